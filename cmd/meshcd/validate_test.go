package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite golden files from the current output")

func TestValidateExamples(t *testing.T) {
	for _, tc := range []struct{ dir, want string }{
		{"shop", "ok: 1 designs, 2 clusters\n"},
		{"fleet", "ok: 3 designs, 5 clusters\n"},
		{"platform", "ok: 1 designs, 2 clusters\n"},
		{"edge", "ok: 3 designs, 3 clusters\n"},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(t.Context(), []string{"validate", filepath.Join("../../examples", tc.dir)}, &out, &errOut)
			if code != 0 || out.String() != tc.want {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit 0 and %q", code, out.String(), errOut.String(), tc.want)
			}
		})
	}
}

// TestValidateInvalidExamples runs `meshcd validate` on every examples/invalid case and
// compares its output with the case's expected.txt (go test -update rewrites them).
func TestValidateInvalidExamples(t *testing.T) {
	cases, err := filepath.Glob("../../examples/invalid/*")
	if err != nil || len(cases) < 10 {
		t.Fatalf("found %d invalid examples (%v), want at least 10", len(cases), err)
	}
	for _, dir := range cases {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			var out, errOut bytes.Buffer
			if code := run(t.Context(), []string{"validate", dir}, &out, &errOut); code != 1 {
				t.Fatalf("exit %d, want 1; stdout %q stderr %q", code, out.String(), errOut.String())
			}
			golden := filepath.Join(dir, "expected.txt")
			if *update {
				if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./cmd/meshcd -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), out.String()); diff != "" {
				t.Errorf("meshcd validate %s (-want +got):\n%s", dir, diff)
			}

			// -o json carries the same issues, for PR bots and editors.
			out.Reset()
			run(t.Context(), []string{"validate", "-o", "json", dir}, &out, &errOut)
			var rep validateReport
			if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
				t.Fatalf("-o json: %v\n%s", err, out.String())
			}
			if rep.OK || len(rep.Issues) == 0 || rep.Issues[0].File == "" || rep.Issues[0].Message == "" {
				t.Errorf("-o json report = %+v", rep)
			}
		})
	}
}

func TestValidateUnreadableDirIsExit2(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(t.Context(), []string{"validate", filepath.Join(t.TempDir(), "missing")}, &out, &errOut); code != 2 {
		t.Fatalf("exit %d, want 2 for a folder that does not exist", code)
	}
}

// TestValidateRendersUnlessSchemaOnly: what only a render finds (an object two designs render)
// fails validate; --schema-only checks the schema alone and passes it.
func TestValidateRendersUnlessSchemaOnly(t *testing.T) {
	dir := "../../examples/invalid/object-in-two-designs"
	var out, errOut bytes.Buffer
	if code := run(t.Context(), []string{"validate", "--schema-only", dir}, &out, &errOut); code != 0 || out.String() != "ok: 2 designs, 1 clusters\n" {
		t.Fatalf("--schema-only: exit %d, %q %q", code, out.String(), errOut.String())
	}
	out.Reset()
	if code := run(t.Context(), []string{"validate", dir}, &out, &errOut); code != 1 {
		t.Fatalf("validate: exit %d, %q, want 1", code, out.String())
	}
}
