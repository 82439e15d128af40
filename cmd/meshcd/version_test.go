package main

import (
	"bytes"
	"encoding/json"
	"runtime"
	"strings"
	"testing"
)

func TestVersion(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(t.Context(), []string{"version"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
	if !strings.HasPrefix(out.String(), "meshcd ") || !strings.Contains(out.String(), runtime.Version()) {
		t.Fatalf("version output %q does not name meshcd and the Go version", out.String())
	}

	out.Reset()
	if code := run(t.Context(), []string{"version", "-o", "json"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
	var info struct{ Version, GoVersion, Platform string }
	if err := json.Unmarshal(out.Bytes(), &info); err != nil {
		t.Fatalf("version -o json is not JSON: %v\n%s", err, out.String())
	}
	if info.Version == "" || info.GoVersion != runtime.Version() || info.Platform != runtime.GOOS+"/"+runtime.GOARCH {
		t.Fatalf("version -o json = %+v", info)
	}
}

func TestUnknownCommandsAndFormatsFail(t *testing.T) {
	for _, args := range [][]string{{"version", "-o", "xml"}, {"no-such-command"}, {"version", "extra"}} {
		var out, errOut bytes.Buffer
		if code := run(t.Context(), args, &out, &errOut); code != 2 {
			t.Errorf("meshcd %v: exit %d, want 2", args, code)
		}
		if !strings.HasPrefix(errOut.String(), "error: ") {
			t.Errorf("meshcd %v: stderr %q does not explain the error", args, errOut.String())
		}
	}
}
