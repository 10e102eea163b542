package auth

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestZZScratch(t *testing.T) {
	_, pool := startRLSDB(t, rlsSchema, 2)
	ctx := context.Background()
	c := NewChecker(CheckerConfig{Pool: pool})
	claims := mkClaims(t, "authenticated", alice, nil)
	keys := make([][]string, 100)
	for i := range keys {
		keys[i] = []string{strconv.Itoa(i*7%2500 + 1)}
	}
	e, _ := c.table(ctx, "public", "big")
	sql, _ := visibleSQL(claims, e, keys)
	parts := strings.Split(sql, ";")
	sel := parts[3]
	conn, _ := pool.Acquire(ctx)
	defer conn.Release()
	pg := conn.Conn().PgConn()
	run := func(name, q string) {
		res, err := pg.Exec(ctx, strings.Join(parts[:3], ";")+";EXPLAIN (ANALYZE, COSTS OFF) "+q+";ROLLBACK").ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Println("==", name)
		for _, r := range res[3].Rows {
			fmt.Println(string(r[0]))
		}
		start := time.Now()
		for i := 0; i < 200; i++ {
			if _, err := pg.Exec(ctx, strings.Join(parts[:3], ";")+";"+q+";COMMIT").ReadAll(); err != nil {
				t.Fatal(err)
			}
		}
		fmt.Println(name, time.Since(start)/200)
	}
	run("values-cast-all", sel)
	first := strings.Replace(sel, "::pg_catalog.int4", "", -1)
	first = strings.Replace(first, "(VALUES (0,'1'", "(VALUES (0,'1'::pg_catalog.int4", 1)
	first = strings.Replace(first, "(VALUES (0,'", "(VALUES (0,'", 1)
	fmt.Println(first[:80])
	run("values-cast-first", first)
	var ids []string
	for _, k := range keys {
		ids = append(ids, k[0])
	}
	run("unnest", "SELECT k.ord FROM unnest('{"+strings.Join(ids, ",")+"}'::pg_catalog.int4[]) WITH ORDINALITY AS k(c0, ord) WHERE EXISTS (SELECT 1 FROM \"public\".\"big\" t WHERE t.\"id\"=k.c0)")
	lat := strings.Replace(sel, ` WHERE EXISTS (SELECT 1 FROM "public"."big" t WHERE t."id"=k.c0)`, ` CROSS JOIN LATERAL (SELECT FROM "public"."big" t WHERE t."id"=k.c0 LIMIT 1) x`, 1)
	fmt.Println(lat[len(lat)-120:])
	run("lateral-limit", lat)
	off := strings.Replace(sel, `t."id"=k.c0)`, `t."id"=k.c0 OFFSET 0)`, 1)
	run("exists-offset0", off)
	var per []string
	for _, id := range ids {
		per = append(per, "SELECT EXISTS (SELECT 1 FROM public.big WHERE id = '"+id+"'::int4)")
	}
	run("per-row-100-selects", strings.Join(per, ";"))
	start := time.Now()
	for i := 0; i < 20; i++ {
		for range 100 {
			if _, err := pg.Exec(ctx, strings.Join(parts[:3], ";")+";SELECT EXISTS (SELECT 1 FROM public.big WHERE id = '5'::int4);COMMIT").ReadAll(); err != nil {
				t.Fatal(err)
			}
		}
	}
	fmt.Println("supabase-style 100 round trips", time.Since(start)/20)
}
