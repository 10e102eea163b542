package decoder

import (
	"encoding/json"
	"testing"
)

func mustBuiltin(t testing.TB, name string) *TypeInfo {
	t.Helper()
	ti := BuiltinType(name)
	if ti == nil {
		t.Fatalf("no builtin type %q", name)
	}
	return ti
}

// testTypes builds user-defined types like those a TypeCache would load.
func testTypes(t testing.TB) map[string]*TypeInfo {
	int4 := mustBuiltin(t, "int4")
	comp := &TypeInfo{OID: 90001, Name: "comp", Kind: 'c', Category: 'C', Delim: ',', Attrs: []Attribute{
		{Name: "a", Type: int4},
		{Name: "b", Type: mustBuiltin(t, "text")},
		{Name: "c", Type: mustBuiltin(t, "_int4")},
		{Name: "d", Type: mustBuiltin(t, "bpchar")},
		{Name: "ts", Type: mustBuiltin(t, "timestamptz")},
	}}
	posint := &TypeInfo{OID: 90002, Name: "posint", Kind: 'd', Category: 'N', Delim: ',', Base: int4}
	chardom := &TypeInfo{OID: 90003, Name: "chardom", Kind: 'd', Category: 'S', Delim: ',', Base: mustBuiltin(t, "bpchar")}
	return map[string]*TypeInfo{
		"comp":       comp,
		"_comp":      {OID: 90004, Name: "_comp", Kind: 'b', Category: 'A', Delim: ',', Elem: comp},
		"posint":     posint,
		"_posint":    {OID: 90005, Name: "_posint", Kind: 'b', Category: 'A', Delim: ',', Elem: posint},
		"chardom":    chardom,
		"mood":       {OID: 90006, Name: "mood", Kind: 'e', Category: 'E', Delim: ','},
		"empty":      {OID: 90007, Name: "empty", Kind: 'c', Category: 'C', Delim: ',', Attrs: []Attribute{}},
		"opaque":     {OID: 90008, Name: "opaque", Kind: 'c', Category: 'C', Delim: ','},
		"_box":       {OID: 1020, Name: "_box", Kind: 'b', Category: 'A', Delim: ';', Elem: &TypeInfo{OID: 603, Name: "box", Kind: 'b', Category: 'G', Delim: ';'}},
		"int2vector": {OID: oidInt2Vector, Name: "int2vector", Kind: 'b', Category: 'A', Delim: ',', Elem: mustBuiltin(t, "int2")},
	}
}

func TestRender(t *testing.T) {
	user := testTypes(t)
	typ := func(name string) *TypeInfo {
		if ti := user[name]; ti != nil {
			return ti
		}
		return mustBuiltin(t, name)
	}
	tests := []struct {
		name, typ, text, want string
	}{
		{"int2", "int2", "-32768", `-32768`},
		{"int4", "int4", "2147483647", `2147483647`},
		{"int8 beyond 2^53", "int8", "9007199254740993", `9007199254740993`},
		{"numeric scale kept", "numeric", "10.50", `10.50`},
		{"numeric negative", "numeric", "-0.001", `-0.001`},
		{"numeric NaN", "numeric", "NaN", `"NaN"`},
		{"numeric Infinity", "numeric", "Infinity", `"Infinity"`},
		{"numeric -Infinity", "numeric", "-Infinity", `"-Infinity"`},
		{"float8 plain", "float8", "1.5", `1.5`},
		{"float8 NaN", "float8", "NaN", `"NaN"`},
		{"float8 Infinity", "float8", "Infinity", `"Infinity"`},
		{"float8 -Infinity", "float8", "-Infinity", `"-Infinity"`},
		{"float8 big exponent", "float8", "1e+20", `100000000000000000000`},
		{"float8 small exponent", "float8", "1.5e-07", `0.00000015`},
		{"float8 negative exponent", "float8", "-1.2345e-10", `-0.00000000012345`},
		{"float8 17 digits", "float8", "1.2345678901234568e+17", `123456789012345680`},
		{"float8 negative zero", "float8", "-0", `0`},
		{"float4 max", "float4", "3.4028235e+38", `340282350000000000000000000000000000000`},
		{"float4 1e-05", "float4", "1e-05", `0.00001`},
		{"bool true", "bool", "t", `true`},
		{"bool false", "bool", "f", `false`},
		{"text escapes", "text", "he said \"hi\"\n\t\\ \x01 ü", `"he said \"hi\"\n\t\\ \u0001 ü"`},
		{"text invalid utf8", "text", "a\xffb", `"a\ufffdb"`},
		{"text html chars", "text", "<a>&", `"<a>&"`},
		{"varchar", "varchar", "abc", `"abc"`},
		{"uuid", "uuid", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", `"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"`},
		{"bpchar first char", "bpchar", "abcde", `"a"`},
		{"bpchar padded", "bpchar", "ab   ", `"a"`},
		{"bpchar multibyte", "bpchar", "éa", `"é"`},
		{"bpchar blank", "bpchar", "     ", `" "`},
		{"bit first char", "bit", "10101", `"1"`},
		{"varbit whole", "varbit", "10101", `"10101"`},
		{"domain over bpchar keeps all", "chardom", "abc", `"abc"`},
		{"json normalized", "json", "{\"bb\" : 1,\n \"a\": [1, 2.50, 1.0e2, -0, \"\\u00e9\\/\"], \"c\": {}}", `{"a":[1,2.50,100,0,"é/"],"c":{},"bb":1}`},
		{"json duplicate keys", "json", `{"a": 1, "b": 2, "a": {"x": [true, false, null]}}`, `{"a":{"x":[true,false,null]},"b":2}`},
		{"json scalar", "json", ` "x" `, `"x"`},
		{"json two values", "json", `1 2`, `"1 2"`},
		{"json invalid", "json", "{", `"{"`},
		{"jsonb verbatim", "jsonb", `{"a": [1, 2.50], "b": {"c": null}}`, `{"a": [1, 2.50], "b": {"c": null}}`},
		{"jsonb string", "jsonb", `"123"`, `"123"`},
		{"timestamp fraction", "timestamp", "2024-05-01 12:00:00.5", `"2024-05-01T12:00:00.5"`},
		{"timestamp whole", "timestamp", "2024-05-01 12:00:00", `"2024-05-01T12:00:00"`},
		{"timestamp infinity", "timestamp", "infinity", `"infinity"`},
		{"timestamp BC", "timestamp", "0044-03-15 12:00:00 BC", `"0044-03-15T12:00:00 BC"`},
		{"timestamptz UTC", "timestamptz", "2024-05-01 10:00:00+00", `"2024-05-01T10:00:00+00:00"`},
		{"timestamptz fraction", "timestamptz", "2024-05-01 10:00:00.123456+00", `"2024-05-01T10:00:00.123456+00:00"`},
		{"timestamptz half hour", "timestamptz", "2024-05-01 15:30:00+05:30", `"2024-05-01T15:30:00+05:30"`},
		{"timestamptz negative", "timestamptz", "2024-05-01 05:00:00-05", `"2024-05-01T05:00:00-05:00"`},
		{"timestamptz seconds offset", "timestamptz", "1900-05-01 09:43:52-00:16:08", `"1900-05-01T09:43:52-00:16:08"`},
		{"timestamptz BC", "timestamptz", "0044-03-15 12:00:00+00 BC", `"0044-03-15T12:00:00+00:00 BC"`},
		{"timestamptz -infinity", "timestamptz", "-infinity", `"-infinity"`},
		{"date", "date", "2024-05-01", `"2024-05-01"`},
		{"time", "time", "12:34:56", `"12:34:56"`},
		{"timetz", "timetz", "12:34:56+02", `"12:34:56+02"`},
		{"interval", "interval", "1 day 02:00:00", `"1 day 02:00:00"`},
		{"bytea", "bytea", `\x0102ff`, `"\\x0102ff"`},
		{"money", "money", "$12.34", `"$12.34"`},
		{"range", "int4range", "[1,10)", `"[1,10)"`},
		{"inet", "inet", "192.168.0.1/24", `"192.168.0.1/24"`},
		{"oid is a string", "oid", "12", `"12"`},
		{"enum", "mood", "happy", `"happy"`},
		{"domain over int", "posint", "5", `5`},
		{"int4 array with null", "_int4", "{1,2,NULL}", `[1,2,null]`},
		{"empty array", "_int4", "{}", `[]`},
		{"2-dim array", "_int4", "{{1,2},{3,4}}", `[[1,2],[3,4]]`},
		{"3-dim array", "_int4", "{{{1},{2}},{{3},{NULL}}}", `[[[1],[2]],[[3],[null]]]`},
		{"array bounds decoration", "_int4", "[0:1]={7,8}", `[7,8]`},
		{"2-dim bounds decoration", "_int4", "[0:1][2:3]={{1,2},{3,4}}", `[[1,2],[3,4]]`},
		{"text array quoting", "_text", `{a,"b c",NULL,"NULL","x\"y","\\\\",""}`, `["a","b c",null,"NULL","x\"y","\\\\",""]`},
		{"text array spaces", "_text", `{ a b , c }`, `["a b","c"]`},
		{"timestamptz array", "_timestamptz", `{"2024-05-01 00:00:00+00",NULL}`, `["2024-05-01T00:00:00+00:00",null]`},
		{"bpchar array first chars", "_bpchar", `{abc,"de ",NULL}`, `["a","d",null]`},
		{"numeric array", "_numeric", `{10.50,NaN}`, `[10.50,"NaN"]`},
		{"jsonb array", "_jsonb", `{"{\"a\": 1}","[1, 2]",NULL}`, `[{"a": 1},[1, 2],null]`},
		{"bool array", "_bool", `{t,f}`, `[true,false]`},
		{"domain array", "_posint", `{1,2}`, `[1,2]`},
		{"box array semicolons", "_box", `{(1,2),(0,0);(3,3),(1,1)}`, `["(1,2),(0,0)","(3,3),(1,1)"]`},
		{"malformed array", "_int4", `{1,2`, `"{1,2"`},
		{"int2vector", "int2vector", `1 2 3`, `[1,2,3]`},
		{"composite", "comp", `(1,"x,""y","{1,2}","ab ","2024-05-01 10:00:00+00")`, `{"a":1,"b":"x,\"y","c":[1,2],"d":"ab ","ts":"2024-05-01T10:00:00+00:00"}`},
		{"composite nulls", "comp", `(,"",,,)`, `{"a":null,"b":"","c":null,"d":null,"ts":null}`},
		{"composite wrong arity", "comp", `(1,2)`, `"(1,2)"`},
		{"composite without attributes", "empty", `()`, `{}`},
		{"composite unknown attributes", "opaque", `(1,2)`, `"(1,2)"`},
		{"composite array", "_comp", `{"(1,x,{},a,)",NULL}`, `[{"a":1,"b":"x","c":[],"d":"a","ts":null},null]`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Render(tc.text, typ(tc.typ))
			if string(got) != tc.want {
				t.Errorf("Render(%q, %s) = %s, want %s", tc.text, tc.typ, got, tc.want)
			}
			if !json.Valid(got) {
				t.Errorf("Render(%q, %s) = %s is not valid JSON", tc.text, tc.typ, got)
			}
		})
	}
	if got := string(Render("x", nil)); got != `"x"` {
		t.Errorf("Render with nil type = %s", got)
	}
	if got := string(AppendRender([]byte("prefix:"), "5", typ("int4"))); got != "prefix:5" {
		t.Errorf("AppendRender = %q", got)
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{Insert: "INSERT", Update: "UPDATE", Delete: "DELETE", 0: "UNKNOWN"} {
		if k.String() != want {
			t.Errorf("Kind(%d).String() = %q, want %q", k, k.String(), want)
		}
	}
}

func TestParseLSN(t *testing.T) {
	lsn, err := ParseLSN("16/B374D848")
	if err != nil || lsn != LSN(0x16B374D848) || lsn.String() != "16/B374D848" {
		t.Fatalf("ParseLSN = %v, %v", lsn, err)
	}
	if _, err := ParseLSN("nope"); err == nil {
		t.Fatal("ParseLSN accepted garbage")
	}
}

func FuzzRenderArray(f *testing.F) {
	for _, s := range []string{
		"{1,2,NULL}", "{}", "{{1,2},{3,4}}", "[0:1]={7,8}", `{a,"b c",NULL,"x\"y"}`,
		`{"(1,x,{},a,)",NULL}`, `{(1,2),(0,0);(3,3),(1,1)}`, "{", "}", `{"`, `{\`, "[", "[1:2]", "{{{{{{{{{{{{{{{{{{{{}}}}}}}}}}}}}}}}}}}}",
		`(1,"x,""y","{1,2}","ab ",)`, "(", `("`, `(\`, "\xff", "{1e+400}", "{-0}",
		`{"a": [1, 2.5e3], "a": "\u00e9"}`, "1e-7", "2024-05-01 10:00:00+00 BC",
	} {
		f.Add(s)
	}
	user := testTypes(f)
	types := []*TypeInfo{
		mustBuiltin(f, "_int4"), mustBuiltin(f, "_text"), mustBuiltin(f, "_float8"), mustBuiltin(f, "_jsonb"),
		mustBuiltin(f, "_timestamptz"), mustBuiltin(f, "_bpchar"), mustBuiltin(f, "_numeric"),
		mustBuiltin(f, "json"), mustBuiltin(f, "_json"), mustBuiltin(f, "float8"), mustBuiltin(f, "timestamptz"),
		user["_comp"], user["comp"], user["_box"], user["int2vector"],
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, ti := range types {
			out := Render(s, ti)
			if !json.Valid(out) {
				t.Fatalf("Render(%q, %s) = %q: invalid JSON", s, ti.Name, out)
			}
		}
	})
}
