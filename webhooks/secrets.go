// Package webhooks is the command side of arrears' webhooks: endpoints and
// their signing secrets (sealed at rest), Standard Webhooks signing, the
// address policy that keeps deliveries off private networks, and the
// operations on deliveries (list, redeliver, replay, test ping). The outbox
// projection is projections.WebhookOutbox; the dispatcher is
// workers.Dispatcher.
package webhooks

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/jackc/pgx/v5/pgxpool"
)

// SecretPrefix starts every signing secret: "whsec_" and the base64 of 32
// random bytes, the Standard Webhooks format.
const SecretPrefix = "whsec_"

// NewSecret returns a new signing secret.
func NewSecret() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(b)
}

// ParseSealingKey decodes ARREARS_WEBHOOK_SECRETS_KEY: 32 bytes, base64
// (standard or URL alphabet, padded or not). Empty means none.
func ParseSealingKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) != 32 {
				return nil, fmt.Errorf("webhook secrets key: %d bytes, want 32", len(b))
			}
			return b, nil
		}
	}
	return nil, errors.New("webhook secrets key: not base64")
}

// Keyring seals and opens signing secrets with AES-256-GCM. Its key is the
// configured one, or else the installation's key kept in the database
// (created on first use): that still keeps secrets out of anything that
// copies the endpoint tables alone, but not out of a whole-database dump, so
// production sets ARREARS_WEBHOOK_SECRETS_KEY.
type Keyring struct {
	pool *pgxpool.Pool
	key  []byte

	mu   sync.Mutex
	aead cipher.AEAD
}

// NewKeyring returns a Keyring with key (nil: the installation key).
func NewKeyring(pool *pgxpool.Pool, key []byte) *Keyring {
	return &Keyring{pool: pool, key: key}
}

// ready returns the cipher, loading or creating the installation key the
// first time. Call it before opening a transaction (it may use a pool
// connection of its own).
func (k *Keyring) ready(ctx context.Context) (cipher.AEAD, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.aead != nil {
		return k.aead, nil
	}
	key := k.key
	if key == nil {
		fresh := make([]byte, 32)
		if _, err := rand.Read(fresh); err != nil {
			return nil, err
		}
		if err := k.pool.QueryRow(ctx, `WITH ins AS (
				INSERT INTO webhook_sealing_key (id, key) VALUES (1, $1) ON CONFLICT (id) DO NOTHING RETURNING key)
			SELECT key FROM ins UNION ALL SELECT key FROM webhook_sealing_key WHERE id = 1 LIMIT 1`, fresh).Scan(&key); err != nil {
			return nil, fmt.Errorf("webhooks: sealing key: %w", err)
		}
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	if k.aead, err = cipher.NewGCM(block); err != nil {
		return nil, err
	}
	return k.aead, nil
}

// Seal encrypts secret, bound to the endpoint id.
func (k *Keyring) Seal(ctx context.Context, endpointID, secret string) ([]byte, error) {
	aead, err := k.ready(ctx)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(secret)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return aead.Seal(nonce, nonce, []byte(secret), []byte(endpointID)), nil
}

// Open decrypts a sealed secret of the endpoint.
func (k *Keyring) Open(ctx context.Context, endpointID string, sealed []byte) (string, error) {
	aead, err := k.ready(ctx)
	if err != nil {
		return "", err
	}
	n := aead.NonceSize()
	if len(sealed) < n {
		return "", errors.New("webhooks: sealed secret too short")
	}
	plain, err := aead.Open(nil, sealed[:n], sealed[n:], []byte(endpointID))
	if err != nil {
		return "", fmt.Errorf("webhooks: cannot open the secret of %s (was ARREARS_WEBHOOK_SECRETS_KEY changed?): %w", endpointID, err)
	}
	return string(plain), nil
}

// Headers of a Standard Webhooks message.
const (
	HeaderID        = standardwebhooks.HeaderWebhookID
	HeaderTimestamp = standardwebhooks.HeaderWebhookTimestamp
	HeaderSignature = standardwebhooks.HeaderWebhookSignature
)

// Sign returns the webhook-signature header value of a message signed by
// every secret ("v1,<base64> v1,<base64>": during a rotation's overlap both
// the new and the previous secret sign, and a receiver holding either
// verifies). It signs with the Standard Webhooks library.
func Sign(secrets []string, msgID string, timestamp int64, payload []byte) (string, error) {
	sigs := make([]string, 0, len(secrets))
	for _, s := range secrets {
		wh, err := standardwebhooks.NewWebhook(s)
		if err != nil {
			return "", fmt.Errorf("webhooks: secret: %w", err)
		}
		sig, err := wh.Sign(msgID, unix(timestamp), payload)
		if err != nil {
			return "", err
		}
		sigs = append(sigs, sig)
	}
	return strings.Join(sigs, " "), nil
}
