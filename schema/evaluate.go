package schema

import (
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"runtime"
	"sort"
	"strings"
	"sync"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/cuecontext"
	cueerrors "cuelang.org/go/cue/errors"
	"cuelang.org/go/encoding/yaml"
)

// compiled is one user file as CUE sees it, wrapped so that it fills its part of #Repo.
type compiled struct {
	file  sourceFile
	value cue.Value
}

// evaluator is one CUE context with the schema compiled in it. A cue.Context must not be
// used from two goroutines, so each goroutine of evaluate has its own.
type evaluator struct {
	cctx         *cue.Context
	repo, design cue.Value
}

func newEvaluator() (*evaluator, error) {
	cctx := cuecontext.New()
	sch := cctx.CompileBytes(schemaSource, cue.Filename(schemaFile))
	if err := sch.Err(); err != nil {
		return nil, fmt.Errorf("meshcd's embedded schema does not compile: %w", err)
	}
	return &evaluator{cctx: cctx, repo: sch.LookupPath(cue.ParsePath("#Repo")), design: sch.LookupPath(cue.ParsePath("#Design"))}, nil
}

// evaluate checks the clusters, then the designs spread over one goroutine per CPU: designs
// are independent of each other, so they need not share a CUE context. A design's Value
// belongs to the context that evaluated it.
func evaluate(files []sourceFile) (*Fleet, []Design, error) {
	var clusterFiles []sourceFile
	designFiles := map[string][]sourceFile{}
	for _, f := range files {
		if f.owner == "" {
			clusterFiles = append(clusterFiles, f)
		} else {
			designFiles[f.owner] = append(designFiles[f.owner], f)
		}
	}
	names := make([]string, 0, len(designFiles))
	for n := range designFiles {
		names = append(names, n)
	}
	sort.Strings(names)

	workers := max(1, min(runtime.GOMAXPROCS(0), len(names)))
	verrs := make([]*ValidationError, workers)
	results := make([]*Design, len(names))
	users := make([][]userValue, len(names))
	errs := make([]error, workers)
	fleet := &Fleet{}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			ev, err := newEvaluator()
			if err != nil {
				errs[w] = err
				return
			}
			verr := &ValidationError{}
			verrs[w] = verr
			if w == 0 {
				var compiledClusters []compiled
				for _, f := range clusterFiles {
					if v, ok := compileFile(ev.cctx, f, verr); ok {
						compiledClusters = append(compiledClusters, compiled{f, v})
					}
				}
				fleet.Clusters = loadClusters(ev.repo, compiledClusters, verr)
			}
			for i := w; i < len(names); i += workers {
				var cs []compiled
				ok := true
				for _, f := range designFiles[names[i]] {
					v, fine := compileFile(ev.cctx, f, verr)
					ok = ok && fine
					cs = append(cs, compiled{f, v})
				}
				if !ok {
					continue
				}
				if d, user, fine := loadDesign(ev.design, names[i], cs, verr); fine {
					results[i], users[i] = &d, user
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	all := &ValidationError{}
	for _, v := range verrs {
		all.Issues = append(all.Issues, v.Issues...)
	}
	if len(all.Issues) > 0 {
		all.sort()
		return nil, nil, all
	}
	designs := make([]Design, 0, len(names))
	for i, d := range results {
		if d == nil {
			return nil, nil, fmt.Errorf("design %s failed without saying why (a bug in meshcd's loader)", names[i])
		}
		designs = append(designs, *d)
	}
	// Rules across designs, once each design is valid on its own. The values of different
	// goroutines' CUE contexts are only read here, after all of them finished.
	for _, di := range resolveNamespaces(designs) {
		all.Issues = append(all.Issues, locate(users[di.design], designs[di.design].Files[0], di.path, nil, di.msg))
	}
	for _, di := range checkIngressAcross(designs) {
		all.Issues = append(all.Issues, locate(users[di.design], designs[di.design].Files[0], di.path, nil, di.msg))
	}
	if len(all.Issues) > 0 {
		all.sort()
		return nil, nil, all
	}
	return fleet, designs, nil
}

// compileFile compiles one CUE or YAML file and checks that it only fills what its place in
// the repo allows: clusters/ files fill `cluster`, designs/<name>/ files fill `design: <name>`.
// YAML files hold the body alone and are named by their place.
func compileFile(cctx *cue.Context, f sourceFile, verr *ValidationError) (cue.Value, bool) {
	strip := []string{"cluster"}
	if f.owner != "" {
		strip = []string{"design", f.owner}
	}
	if strings.HasSuffix(f.path, ".cue") {
		v := cctx.CompileBytes(f.data, cue.Filename(f.path))
		if err := v.Err(); err != nil {
			addCUEErrors(verr, err, f.path, nil, strip)
			return cue.Value{}, false
		}
		return v, checkTopLevel(v, f, verr)
	}
	file, err := yaml.Extract(f.path, f.data)
	if err != nil {
		addCUEErrors(verr, err, f.path, nil, nil)
		return cue.Value{}, false
	}
	body := cctx.BuildFile(file)
	if err := body.Err(); err != nil {
		addCUEErrors(verr, err, f.path, nil, nil)
		return cue.Value{}, false
	}
	var p cue.Path
	if f.owner != "" {
		p = cue.MakePath(cue.Str("design"), cue.Str(f.owner))
	} else {
		stem := strings.TrimSuffix(strings.TrimSuffix(path.Base(f.path), ".yaml"), ".yml")
		p = cue.MakePath(cue.Str("cluster"), cue.Str(stem))
	}
	return cctx.CompileString("{}").FillPath(p, body), true
}

func checkTopLevel(v cue.Value, f sourceFile, verr *ValidationError) bool {
	ok := true
	want := "cluster"
	if f.owner != "" {
		want = "design"
	}
	it, err := v.Fields(cue.Definitions(true), cue.Hidden(true), cue.Optional(true))
	if err != nil {
		addCUEErrors(verr, err, f.path, nil, nil)
		return false
	}
	for it.Next() {
		sel := it.Selector()
		if sel.String() != want {
			line, col := position(it.Value())
			verr.Issues = append(verr.Issues, Issue{File: f.path, Line: line, Column: col, Path: sel.String(),
				Message: fmt.Sprintf("a file in %s may only define %q", path.Dir(f.path), want)})
			ok = false
			continue
		}
		if f.owner == "" {
			continue
		}
		inner, err := it.Value().Fields(cue.Optional(true))
		if err != nil {
			continue // reported when the design is validated
		}
		for inner.Next() {
			if name := inner.Selector().Unquoted(); name != f.owner {
				line, col := position(inner.Value())
				verr.Issues = append(verr.Issues, Issue{File: f.path, Line: line, Column: col, Path: "design." + inner.Selector().String(),
					Message: fmt.Sprintf("a file in designs/%s may only define design %q", f.owner, f.owner)})
				ok = false
			}
		}
	}
	return ok
}

func loadClusters(repo cue.Value, files []compiled, verr *ValidationError) []Cluster {
	definedIn := map[string]string{}
	v := repo
	for _, f := range files {
		it, err := f.value.LookupPath(cue.ParsePath("cluster")).Fields(cue.Optional(true))
		dup := false
		if err == nil {
			var names []string
			for it.Next() {
				name := it.Selector().Unquoted()
				if prev, ok := definedIn[name]; ok && prev != f.file.path {
					line, col := position(it.Value())
					verr.Issues = append(verr.Issues, Issue{File: f.file.path, Line: line, Column: col, Path: name,
						Message: fmt.Sprintf("cluster %q is already defined in %s", name, prev)})
					dup = true
					continue
				}
				names = append(names, name)
			}
			if dup {
				continue // unifying both definitions would only add confusing conflicts
			}
			for _, n := range names {
				definedIn[n] = f.file.path
			}
		}
		v = v.Unify(f.value)
	}
	before := len(verr.Issues)
	user := values(files)
	if err := validateEach(v, v.LookupPath(cue.ParsePath("cluster"))); err != nil {
		addCUEErrors(verr, err, "", user, []string{"cluster"})
	}
	if len(verr.Issues) > before {
		return nil
	}
	var clusters []Cluster
	names := make([]string, 0, len(definedIn))
	for n := range definedIn {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		cv := v.LookupPath(cue.MakePath(cue.Str("cluster"), cue.Str(name)))
		var c Cluster
		if err := decode(cv, &c); err != nil {
			addCUEErrors(verr, err, definedIn[name], user, []string{"cluster"})
			continue
		}
		c.Name, c.File = name, definedIn[name]
		for _, ri := range checkCluster(&c) {
			verr.Issues = append(verr.Issues, locate(user, definedIn[name], append([]string{"cluster", name}, ri.path...), []string{"cluster"}, ri.msg))
		}
		clusters = append(clusters, c)
	}
	return clusters
}

func loadDesign(designSchema cue.Value, name string, files []compiled, verr *ValidationError) (Design, []userValue, bool) {
	// Each file was checked to define nothing but this design, so the design alone is unified
	// with #Design: cheaper than the whole #Repo, and paths come out relative to the design.
	at := cue.MakePath(cue.Str("design"), cue.Str(name))
	v := designSchema
	d := Design{Name: name, Dir: "designs/" + name}
	user := make([]userValue, len(files))
	for i, f := range files {
		fv := f.value.LookupPath(at)
		v = v.Unify(fv)
		d.Files = append(d.Files, f.file.path)
		user[i] = userValue{file: f.file.path, value: fv}
	}
	if err := validateEach(v, v); err != nil {
		addCUEErrors(verr, err, files[0].file.path, user, nil)
		return d, nil, false
	}
	if err := decode(v, &d); err != nil {
		addCUEErrors(verr, err, files[0].file.path, user, nil)
		return d, nil, false
	}
	d.Name, d.Dir, d.Value, d.user = name, "designs/"+name, v, user
	issues := checkDesign(&d)
	for _, ri := range issues {
		verr.Issues = append(verr.Issues, locate(user, files[0].file.path, ri.path, nil, ri.msg))
	}
	return d, user, len(issues) == 0
}

func values(files []compiled) []userValue {
	out := make([]userValue, len(files))
	for i, f := range files {
		out[i] = userValue{file: f.file.path, value: f.value}
	}
	return out
}

// userValue is one user file's own value, before the schema, used to find where a path was
// written.
type userValue struct {
	file  string
	value cue.Value
}

// validateEach validates the whole value, and then each field of part on its own: CUE leaves
// out "missing field" errors once it has found another error, and users want every problem.
func validateEach(whole, part cue.Value) error {
	var all []error
	if err := whole.Validate(cue.Concrete(true), cue.All()); err != nil {
		all = append(all, err)
	} else {
		return nil
	}
	it, err := part.Fields(cue.Optional(true))
	if err != nil {
		return errors.Join(all...)
	}
	for it.Next() {
		if it.Selector().ConstraintType() == cue.OptionalConstraint {
			continue // an optional field the design left out (ownsNamespace?): nothing to miss
		}
		if err := it.Value().Validate(cue.Concrete(true), cue.All()); err != nil {
			all = append(all, err)
		}
	}
	var list cueerrors.Error
	for _, e := range all {
		for _, ce := range cueerrors.Errors(e) {
			list = cueerrors.Append(list, ce)
		}
	}
	return list
}

// decode fills a Go value from a validated CUE value. Going through JSON is several times
// cheaper than cue.Value.Decode, which sorts every struct's fields on the way.
func decode(v cue.Value, into any) error {
	data, err := v.MarshalJSON()
	if err != nil {
		return err
	}
	return json.Unmarshal(data, into)
}
