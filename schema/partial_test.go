package schema

import (
	"testing"
	"testing/fstest"
)

func TestLoadPartialLeavesOutOnlyTheInvalidDesign(t *testing.T) {
	good := `design: shop: {namespace: "shop", targets: {}, manifests: []}`
	bad := "design: cart: {\n\tnamespace: 42\n}\n"
	tests := []struct {
		name        string
		files       map[string]string
		wantDesigns []string
		wantInvalid []string
		wantErr     bool
	}{
		{"all valid", map[string]string{"designs/shop/design.cue": good}, []string{"shop"}, nil, false},
		{"one invalid", map[string]string{"designs/shop/design.cue": good, "designs/cart/design.cue": bad}, []string{"shop"}, []string{"cart"}, false},
		{"a broken cluster fails the repo", map[string]string{"designs/shop/design.cue": good, "clusters/east.cue": "cluster: east: mesh: \"consul\"\n"}, nil, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fsys := fstest.MapFS{}
			for p, s := range tc.files {
				fsys[p] = &fstest.MapFile{Data: []byte(s)}
			}
			p, err := LoadPartial(t.Context(), fsys, DefaultLoadOptions())
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			var names []string
			for _, d := range p.Designs {
				names = append(names, d.Name)
			}
			if len(names) != len(tc.wantDesigns) || (len(names) > 0 && names[0] != tc.wantDesigns[0]) {
				t.Errorf("designs %v, want %v", names, tc.wantDesigns)
			}
			for _, name := range tc.wantInvalid {
				issues := p.Invalid[name]
				if len(issues) == 0 || issues[0].File != "designs/"+name+"/design.cue" || issues[0].Line == 0 {
					t.Errorf("invalid %s: %+v, want its problems with their positions", name, issues)
				}
			}
			if len(p.Invalid) != len(tc.wantInvalid) {
				t.Errorf("invalid %v, want %v", p.Invalid, tc.wantInvalid)
			}
		})
	}
}
