package pglitetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// directScript opens PGlite on a data directory in this Node process (no
// bridge, no socket), runs the statements read as a JSON array from
// standard input one db.exec each, in order, and closes PGlite so the
// directory is consistent. It runs in cmd/pglite-bridge, so it uses the
// bridge's own PGlite version.
const directScript = `
import { PGlite } from '@electric-sql/pglite'
const chunks = []
for await (const c of process.stdin) chunks.push(c)
const stmts = JSON.parse(Buffer.concat(chunks).toString('utf8'))
const db = await PGlite.create(process.argv[1])
try {
  for (const s of stmts) await db.exec(s)
} finally {
  await db.close()
}
`

// ExecStopped runs each statement of sql, in order, on the server's data
// directory while the bridge is stopped, with PGlite opened directly by a
// second Node process: another program writing to the database while no
// bridge serves it. It fails if the bridge is running (two PGlite
// instances must never share a directory).
func (s *Server) ExecStopped(ctx context.Context, sql ...string) error {
	if s.cmd != nil {
		return errors.New("pglitetest: ExecStopped: the bridge is running; Stop it first")
	}
	if s.Stock {
		return errors.New("pglitetest: ExecStopped needs the repository's bridge packages, not Stock")
	}
	if _, err := Bridge(); err != nil {
		return err
	}
	in, err := json.Marshal(sql)
	if err != nil {
		return fmt.Errorf("pglitetest: ExecStopped: %w", err)
	}
	cmd := exec.CommandContext(ctx, "node", "--input-type=module", "-e", directScript, s.Dir)
	// Bare imports resolve from the working directory: the bridge's packages.
	cmd.Dir = BridgeDir()
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("pglitetest: ExecStopped on %s: %w; output:\n%s", s.Dir, err, strings.TrimSpace(string(out)))
	}
	return nil
}
