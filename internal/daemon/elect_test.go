package daemon

import (
	"fmt"
	"testing"
)

func TestShardsSplitClustersDisjointly(t *testing.T) {
	const shards = 3
	counts := make([]int, shards)
	for i := range 300 {
		name := fmt.Sprintf("cluster-%d", i)
		owners := 0
		for id := range shards {
			if (Shard{ID: id, Of: shards}).Owns(name) {
				owners++
				counts[id]++
			}
		}
		if owners != 1 {
			t.Fatalf("%s is owned by %d shards", name, owners)
		}
	}
	for id, n := range counts {
		if n < 70 {
			t.Errorf("shard %d owns only %d of 300 clusters", id, n)
		}
	}
	if !(Shard{Of: 1}).Owns("anything") {
		t.Error("a single shard owns every cluster")
	}
}

func TestParseShardID(t *testing.T) {
	t.Setenv("POD_NAME", "meshcd-2")
	for _, tt := range []struct {
		in      string
		shards  int
		want    int
		wantErr bool
	}{
		{"auto", 3, 2, false},
		{"1", 3, 1, false},
		{"3", 3, 0, true},
		{"-1", 3, 0, true},
		{"x", 3, 0, true},
	} {
		got, err := ParseShardID(tt.in, tt.shards)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseShardID(%q, %d) = %d, %v", tt.in, tt.shards, got, err)
		}
	}
	t.Setenv("POD_NAME", "meshcd")
	if _, err := ParseShardID("auto", 2); err == nil {
		t.Error("auto without an ordinal and several shards should fail")
	}
}
