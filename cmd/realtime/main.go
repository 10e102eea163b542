// Command realtime is the realtime change-feed service of a Supabase-style
// backend: `realtime serve` runs it against a database (or none), `realtime
// dev` runs it on a throwaway local PostgreSQL with a demo schema, and
// `realtime version` prints the build.
package main

import (
	"fmt"
	"os"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

const usage = `usage: realtime <command> [flags]

commands:
  serve     run the service (flags: realtime serve -h)
  dev       run the service on a throwaway local PostgreSQL with a demo schema
  version   print the version
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = runServe(os.Args[2:])
	case "dev":
		err = runDev(os.Args[2:])
	case "version", "--version", "-v":
		fmt.Println("realtime", version)
	case "help", "-h", "--help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "realtime: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "realtime:", err)
		os.Exit(1)
	}
}
