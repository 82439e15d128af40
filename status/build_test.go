package status

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/meshcd/meshcd/drift"
	"github.com/meshcd/meshcd/reconciler"
)

func TestFilesFromASnapshot(t *testing.T) {
	healed := time.Date(2026, 12, 1, 10, 0, 1, 0, time.UTC)
	res := &reconciler.SyncResult{Entries: []reconciler.Entry{{Object: "a", Action: reconciler.Created}, {Object: "b", Action: reconciler.Failed, Error: "refused"}}, Health: reconciler.Health{Status: "Current"}, Error: "1 of 2 objects failed"}
	var east Sync
	east.Design, east.Cluster, east.Revision = "shop", "east", "0123456789abcdef"
	Record(&east, res, 5)
	west := Sync{Design: "shop", Cluster: "west", Revision: "0123456789abcdef", Objects: map[string]int{"total": 3, "failed": 0}, Health: "Current"}
	snap := Snapshot{
		Syncs: []Sync{west, east},
		Drift: map[string][]drift.Entry{"west/shop": {{Object: "v1/ConfigMap shop/settings", Kind: drift.Modified, DetectedAt: healed.Add(-time.Second), HealedAt: &healed}}},
		Gates: map[string]Gate{
			"shop/latency/east":  {Name: "latency", Pass: true, Revision: "0123456789abcdef"},
			"shop/latency/west":  {Name: "latency", Pass: false, Revision: "0123456789abcdef"},
			"other/latency/east": {Name: "latency", Pass: true},
		},
		GateFiles: map[string][]byte{"status/gates/shop/latency/east.json": []byte("{}\n")},
	}
	files, err := Files(snap)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for p := range files {
		names = append(names, p)
	}
	want := []string{"status/README.md", "status/drift/west.json", "status/gates/shop/latency/east.json", "status/shop/east.json", "status/shop/west.json"}
	if diff := cmp.Diff(want, slices.Sorted(slices.Values(names))); diff != "" {
		t.Errorf("files (-want +got)\n%s", diff)
	}
	matrix := string(files[ReadmePath])
	// Object counts are the bundle's objects, not the sum of every count in the file.
	for _, s := range []string{"❌ `0123456` 5 objects, Current", "✅ `0123456` 3 objects, Current · 🔀 1 drifted, 1 healed · 🚦 latency ❌"} {
		if !strings.Contains(matrix, s) {
			t.Errorf("the matrix lacks %q:\n%s", s, matrix)
		}
	}
	if !strings.Contains(string(files["status/shop/east.json"]), `"failed": 1`) || strings.Contains(string(files["status/shop/east.json"]), "created") {
		t.Errorf("east's status counts objects by state, not by what the last sync did:\n%s", files["status/shop/east.json"])
	}
	again, _ := Files(snap)
	for p := range files {
		if string(again[p]) != string(files[p]) {
			t.Errorf("%s differs between two builds of one snapshot", p)
		}
	}
	shards := snap
	shards.Shard, shards.Shards = 1, 3
	if files, _ := Files(shards); files["status/shards/1.md"] == nil || files[ReadmePath] != nil {
		t.Error("a shard of three writes status/shards/1.md, not status/README.md")
	}
}

func TestMergeLedgerKeepsTheNewestWithoutDuplicates(t *testing.T) {
	at := func(s int) time.Time { return time.Date(2026, 1, 1, 0, 0, s, 0, time.UTC) }
	old := []drift.Entry{{Object: "a", DetectedAt: at(1)}, {Object: "b", DetectedAt: at(2)}}
	got := MergeLedger(old, []drift.Entry{{Object: "b", DetectedAt: at(2)}, {Object: "c", DetectedAt: at(3)}})
	if len(got) != 3 || got[2].Object != "c" {
		t.Errorf("merge: %+v", got)
	}
	var many []drift.Entry
	for i := range LedgerSize + 10 {
		many = append(many, drift.Entry{Object: "x", DetectedAt: at(i)})
	}
	if got := MergeLedger(nil, many); len(got) != LedgerSize || !got[0].DetectedAt.Equal(at(10)) {
		t.Errorf("a long ledger keeps the newest %d, got %d from %v", LedgerSize, len(got), got[0].DetectedAt)
	}
}

// TestRecordKeepsAdoptions: an adoption happens in one sync; the status file still names it
// after later syncs that adopt nothing, and a refused adoption (failed) is not recorded.
func TestRecordKeepsAdoptions(t *testing.T) {
	var s Sync
	Record(&s, &reconciler.SyncResult{Entries: []reconciler.Entry{
		{Object: "ConfigMap shop/a", Action: reconciler.Configured, AdoptedFrom: "old"},
		{Object: "ConfigMap shop/b", Action: reconciler.Failed, AdoptedFrom: "other"},
	}}, 2)
	Record(&s, &reconciler.SyncResult{Entries: []reconciler.Entry{{Object: "ConfigMap shop/a", Action: reconciler.Unchanged}}}, 2)
	Record(&s, &reconciler.SyncResult{Entries: []reconciler.Entry{{Object: "ConfigMap shop/a", Action: reconciler.Configured, AdoptedFrom: "old"}}}, 2)
	if diff := cmp.Diff([]Adoption{{Object: "ConfigMap shop/a", From: "old"}}, s.Adopted); diff != "" {
		t.Fatalf("adopted (-want +got):\n%s", diff)
	}
}
