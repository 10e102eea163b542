package pgcluster

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestStartQueryRestartStop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := Start(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	conn, err := pgx.Connect(ctx, c.URL(""))
	if err != nil {
		t.Fatal(err)
	}
	var level string
	if err := conn.QueryRow(ctx, "show wal_level").Scan(&level); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	if level != "logical" {
		t.Fatalf("wal_level = %q, want logical", level)
	}
	if err := c.StopServer(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.StartServer(ctx); err != nil {
		t.Fatal(err)
	}
	conn, err = pgx.Connect(ctx, c.URL(""))
	if err != nil {
		t.Fatalf("after restart: %v", err)
	}
	conn.Close(ctx)
	dir := c.Dir
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := Start(ctx, Options{Dir: dir}); err == nil {
		t.Fatal("Start under a removed directory should fail")
	}
}
