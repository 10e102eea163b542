package auth

import (
	"context"
	"fmt"
	"testing"
)

func TestZZLeak(t *testing.T) {
	_, pool := startRLSDB(t, rlsSchema, 2)
	ctx := context.Background()
	rows, err := pool.Query(ctx, `SELECT oc.opcname::text, o.oprname::text, ao.amoplefttype::regtype::text, p.proname::text, p.proleakproof
FROM pg_opclass oc JOIN pg_amop ao ON ao.amopfamily = oc.opcfamily AND ao.amopstrategy = 3 AND ao.amoplefttype = oc.opcintype AND ao.amoprighttype = oc.opcintype
JOIN pg_operator o ON o.oid = ao.amopopr JOIN pg_proc p ON p.oid = o.oprcode
WHERE oc.opcmethod = 403 AND oc.opcdefault ORDER BY 1`)
	if err != nil { t.Fatal(err) }
	for rows.Next() {
		var a, b, c, d string; var lp bool
		rows.Scan(&a, &b, &c, &d, &lp)
		fmt.Println(a, c, d, lp)
	}
	_, err = pool.Exec(ctx, `CREATE TABLE public.en (m public.mood PRIMARY KEY, x int); ALTER TABLE public.en ENABLE ROW LEVEL SECURITY; CREATE POLICY p ON public.en USING (x > 0); GRANT SELECT ON public.en TO authenticated; INSERT INTO public.en VALUES ('happy', 1), ('sad', 0)`)
	if err != nil { t.Fatal(err) }
	conn, _ := pool.Acquire(ctx)
	defer conn.Release()
	res, err := conn.Conn().PgConn().Exec(ctx, `BEGIN; SET LOCAL ROLE authenticated; EXPLAIN SELECT k.ord FROM (VALUES (0,'happy'::public.mood),(1,'sad'::public.mood)) AS k(ord,c0) WHERE EXISTS (SELECT 1 FROM public.en t WHERE t.m = k.c0 OFFSET 0); SET LOCAL enable_seqscan = off; EXPLAIN SELECT k.ord FROM (VALUES (0,'happy'::public.mood),(1,'sad'::public.mood)) AS k(ord,c0) WHERE EXISTS (SELECT 1 FROM public.en t WHERE t.m = k.c0 OFFSET 0); ROLLBACK`).ReadAll()
	if err != nil { t.Fatal(err) }
	for _, r := range res { for _, row := range r.Rows { fmt.Println(string(row[0])) } }
}
