package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/arrears/arrears/domain"
	"github.com/arrears/arrears/eventstore"
)

const keysUsage = `Usage:
  arrears keys create --tenant NAME [--name LABEL] [--scopes accounts:read,claims:write] [--read-only] [--sandbox] [--expires 720h]
  arrears keys list [--tenant NAME]
  arrears keys revoke KEY_ID

create makes the tenant if no tenant has that name, and prints the secret once.`

func keys(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("%s", keysUsage)
	}
	switch args[0] {
	case "create":
		return keysCreate(ctx, args[1:])
	case "list":
		return keysList(ctx, args[1:])
	case "revoke":
		return keysRevoke(ctx, args[1:])
	}
	return fmt.Errorf("unknown keys command %q\n%s", args[0], keysUsage)
}

var cliMeta = domain.Metadata{Actor: "cli:arrears-keys"}

func keysCreate(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("keys create", flag.ContinueOnError)
	tenant := fs.String("tenant", "", "tenant name (created if missing)")
	name := fs.String("name", "", "label for the key")
	scopes := fs.String("scopes", "", "comma-separated <resource>:read|write; empty = full access")
	readOnly := fs.Bool("read-only", false, "reject every write")
	sandbox := fs.Bool("sandbox", false, "a test key (sk_test_…) that sees only sandbox data")
	expires := fs.Duration("expires", 0, "lifetime, e.g. 720h; 0 = no expiry")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *tenant == "" || fs.NArg() > 0 {
		return fmt.Errorf("%s", keysUsage)
	}
	p, err := tool(ctx)
	if err != nil {
		return err
	}
	defer p.close()
	in := eventstore.NewKey{Name: *name, Mode: domain.ModeLive, ReadOnly: *readOnly}
	if *sandbox {
		in.Mode = domain.ModeTest
	}
	for _, s := range strings.Split(*scopes, ",") {
		if s = strings.TrimSpace(s); s != "" {
			in.Scopes = append(in.Scopes, s)
		}
	}
	if *expires > 0 {
		t := time.Now().Add(*expires).UTC()
		in.ExpiresAt = &t
	}
	var k domain.APIKey
	var secret string
	var t domain.Tenant
	err = p.store.WithTx(ctx, func(tx pgx.Tx) error {
		var err error
		if t, err = tenantByName(ctx, p.store, tx, *tenant); err != nil {
			return err
		}
		in.TenantID = t.ID
		k, secret, _, err = p.store.CreateKeyTx(ctx, tx, in, cliMeta)
		return err
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "created %s key %s for tenant %s (%s); the secret is shown only now:\n", k.Mode, k.ID, t.Name, t.ID)
	fmt.Println(secret)
	return nil
}

// tenantByName returns the tenant called name, creating it if none is.
func tenantByName(ctx context.Context, s *eventstore.Store, tx pgx.Tx, name string) (domain.Tenant, error) {
	ts, err := s.Tenants(ctx)
	if err != nil {
		return domain.Tenant{}, err
	}
	for _, t := range ts {
		if t.Name == name || t.ID == name {
			return t, nil
		}
	}
	t, _, err := s.CreateTenantTx(ctx, tx, name, cliMeta)
	return t, err
}

func keysList(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("keys list", flag.ContinueOnError)
	tenant := fs.String("tenant", "", "only this tenant (name or id)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	p, err := tool(ctx)
	if err != nil {
		return err
	}
	defer p.close()
	ts, err := p.store.Tenants(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TENANT\tKEY\tPREFIX\tMODE\tSCOPES\tREAD-ONLY\tSTATUS\tCREATED\tLAST USED")
	for _, t := range ts {
		if *tenant != "" && *tenant != t.Name && *tenant != t.ID {
			continue
		}
		for after := ""; ; {
			ks, err := p.store.Keys(ctx, t.ID, "", after, 200)
			if err != nil {
				return err
			}
			for _, k := range ks {
				status := "active"
				switch {
				case k.RevokedAt != nil:
					status = "revoked"
				case !k.Active(time.Now()):
					status = "expired"
				}
				scopes, used := strings.Join(k.Scopes, ","), "never"
				if scopes == "" {
					scopes = "(all)"
				}
				if k.LastUsedAt != nil {
					used = k.LastUsedAt.Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s…\t%s\t%s\t%t\t%s\t%s\t%s\n", t.Name, k.ID, k.Prefix, k.Mode, scopes, k.ReadOnly, status, k.CreatedAt.Format(time.RFC3339), used)
			}
			if len(ks) < 200 {
				break
			}
			after = ks[len(ks)-1].ID
		}
	}
	return tw.Flush()
}

func keysRevoke(ctx context.Context, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("%s", keysUsage)
	}
	p, err := tool(ctx)
	if err != nil {
		return err
	}
	defer p.close()
	k, err := p.store.KeyByID(ctx, args[0])
	if err != nil {
		return err
	}
	err = p.store.WithTx(ctx, func(tx pgx.Tx) error {
		_, _, err := p.store.RevokeKeyTx(ctx, tx, k.TenantID, k.Mode, k.ID, cliMeta)
		return err
	})
	if err != nil {
		return err
	}
	fmt.Printf("revoked %s\n", k.ID)
	return nil
}

// bootstrapDevTenant: on the first zero-configuration start (no tenant yet)
// create a development tenant and one live key, and print the key once.
func bootstrapDevTenant(ctx context.Context, p *platform, log *slog.Logger) error {
	ts, err := p.store.Tenants(ctx)
	if err != nil || len(ts) > 0 {
		return err
	}
	var secret string
	var k domain.APIKey
	err = p.store.WithTx(ctx, func(tx pgx.Tx) error {
		t, _, err := p.store.CreateTenantTx(ctx, tx, "Development", domain.Metadata{Actor: "system:bootstrap"})
		if err != nil {
			return err
		}
		k, secret, _, err = p.store.CreateKeyTx(ctx, tx, eventstore.NewKey{TenantID: t.ID, Name: "development", Mode: domain.ModeLive}, domain.Metadata{Actor: "system:bootstrap"})
		return err
	})
	if err != nil {
		return fmt.Errorf("bootstrap development tenant: %w", err)
	}
	log.Warn("first start: created tenant \"Development\" and a full-access API key; it is shown only this once — "+
		"use it as: curl -H 'Authorization: Bearer "+secret+"' http://127.0.0.1:8080/v1/organization",
		"key_id", k.ID, "api_key", secret)
	return nil
}
