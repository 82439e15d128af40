package schema

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/cuecontext"
	cueerrors "cuelang.org/go/cue/errors"
	"cuelang.org/go/encoding/yaml"
)

//go:embed cue/schema.cue
var schemaSource []byte

// schemaFile is the name CUE gives the embedded schema in positions; issues never point there.
const schemaFile = "meshcd-schema.cue"

// LoadOptions bounds what loading a fleet repo may cost.
type LoadOptions struct {
	// MaxFileBytes refuses any design or cluster file larger than this.
	MaxFileBytes int64
	// MaxTotalBytes refuses a repo whose design and cluster files add up to more than this.
	MaxTotalBytes int64
	// Timeout bounds evaluation.
	Timeout time.Duration
	// MaxMemoryBytes bounds the heap of an evaluation in a Worker.
	MaxMemoryBytes int64
	// Worker, when set, evaluates the repo first in a separate process that is killed at the
	// Timeout or past MaxMemoryBytes; only a repo that passed there is evaluated in this
	// process. Without a Worker, evaluation runs here and a timeout only abandons it: CUE
	// cannot be cancelled, so a hostile repo can still cost this process CPU and memory.
	Worker *Worker
}

// DefaultLoadOptions returns the limits meshcd uses unless configured otherwise.
func DefaultLoadOptions() LoadOptions {
	return LoadOptions{MaxFileBytes: 1 << 20, MaxTotalBytes: 32 << 20, Timeout: 20 * time.Second, MaxMemoryBytes: 1 << 30}
}

func (o LoadOptions) withDefaults() LoadOptions {
	def := DefaultLoadOptions()
	if o.MaxFileBytes <= 0 {
		o.MaxFileBytes = def.MaxFileBytes
	}
	if o.MaxTotalBytes <= 0 {
		o.MaxTotalBytes = def.MaxTotalBytes
	}
	if o.Timeout <= 0 {
		o.Timeout = def.Timeout
	}
	if o.MaxMemoryBytes <= 0 {
		o.MaxMemoryBytes = def.MaxMemoryBytes
	}
	return o
}

// Summary counts what a valid fleet repo holds.
type Summary struct {
	Clusters, Designs int
}

// Check validates a fleet repo like Load, without keeping the values: what `meshcd validate`
// and PR checks need. With opts.Worker set, nothing from the repo is evaluated in this process.
func Check(ctx context.Context, fsys fs.FS, opts LoadOptions) (Summary, error) {
	opts = opts.withDefaults()
	files, err := readRepo(fsys, opts)
	if err != nil {
		return Summary{}, err
	}
	if opts.Worker != nil {
		resp, err := evaluateIsolated(ctx, opts.Worker, files, opts)
		if err != nil {
			return Summary{}, err
		}
		if len(resp.Issues) > 0 {
			return Summary{}, &ValidationError{Issues: resp.Issues}
		}
		return Summary{Clusters: resp.Clusters, Designs: resp.Designs}, nil
	}
	fleet, designs, err := evaluateWithTimeout(ctx, files, opts.Timeout)
	if err != nil {
		return Summary{}, err
	}
	return Summary{Clusters: len(fleet.Clusters), Designs: len(designs)}, nil
}

// Load reads a fleet repo from fsys (a Git snapshot or a folder), checks every cluster and
// design against the schema and the cross-field rules, and returns them with defaults applied,
// sorted by name. Problems in the repo come back together as a *ValidationError; any other
// error means the repo could not be read or evaluated at all.
func Load(ctx context.Context, fsys fs.FS, opts LoadOptions) (*Fleet, []Design, error) {
	opts = opts.withDefaults()
	files, err := readRepo(fsys, opts)
	if err != nil {
		return nil, nil, err
	}
	if opts.Worker != nil {
		resp, err := evaluateIsolated(ctx, opts.Worker, files, opts)
		if err != nil {
			return nil, nil, err
		}
		if len(resp.Issues) > 0 {
			return nil, nil, &ValidationError{Issues: resp.Issues}
		}
		// The worker proved this repo evaluates within budget; doing it again here is as cheap.
	}
	return evaluateWithTimeout(ctx, files, opts.Timeout)
}

func evaluateWithTimeout(ctx context.Context, files []sourceFile, timeout time.Duration) (*Fleet, []Design, error) {
	type result struct {
		fleet   *Fleet
		designs []Design
		err     error
	}
	done := make(chan result, 1)
	go func() {
		f, d, err := evaluateRecovering(files)
		done <- result{f, d, err}
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case r := <-done:
		return r.fleet, r.designs, r.err
	case <-timer.C:
		return nil, nil, budgetError(fmt.Sprintf("evaluation took longer than %s: look for recursive or exponentially large definitions", timeout))
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
}

// evaluateRecovering turns a panic inside the evaluator (a bug there) into an error, so that it
// costs one evaluation, never the daemon.
func evaluateRecovering(files []sourceFile) (fleet *Fleet, designs []Design, err error) {
	defer func() {
		if r := recover(); r != nil {
			fleet, designs, err = nil, nil, fmt.Errorf("evaluating the fleet repo failed: %v", r)
		}
	}()
	return evaluate(files)
}

// sourceFile is one design or cluster file read from the repo.
type sourceFile struct {
	path string // relative to the repo root
	data []byte
	// owner is the design folder name for design files, "" for cluster files.
	owner string
}

// readRepo lists clusters/*.{cue,yaml,yml} and designs/<name>/*.cue plus
// designs/<name>/design.{yaml,yml}, refusing links and oversized files.
func readRepo(fsys fs.FS, opts LoadOptions) ([]sourceFile, error) {
	verr := &ValidationError{}
	var files []sourceFile
	var total int64
	read := func(p, owner string) error {
		info, err := lstat(fsys, p)
		if err != nil {
			return err
		}
		if info.Mode()&fs.ModeSymlink != 0 {
			verr.Issues = append(verr.Issues, Issue{File: p, Message: "is a symbolic link; meshcd reads only regular files inside the repo"})
			return nil
		}
		if !info.Mode().IsRegular() {
			verr.Issues = append(verr.Issues, Issue{File: p, Message: "is not a regular file"})
			return nil
		}
		if info.Size() > opts.MaxFileBytes {
			verr.Issues = append(verr.Issues, Issue{File: p, Message: fmt.Sprintf("is %s, over the %s limit for one file", bytesText(info.Size()), bytesText(opts.MaxFileBytes))})
			return nil
		}
		total += info.Size()
		if total > opts.MaxTotalBytes {
			return errTooLarge
		}
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		files = append(files, sourceFile{path: p, data: data, owner: owner})
		return nil
	}
	clusters, err := readDirIfExists(fsys, "clusters")
	if err != nil {
		return nil, err
	}
	for _, e := range clusters {
		if e.IsDir() || !isCUEOrYAML(e.Name()) {
			continue
		}
		if err := read(path.Join("clusters", e.Name()), ""); err != nil {
			return nil, tooLarge(err, opts)
		}
	}
	designs, err := readDirIfExists(fsys, "designs")
	if err != nil {
		return nil, err
	}
	for _, d := range designs {
		dir := path.Join("designs", d.Name())
		if !d.IsDir() {
			if d.Type()&fs.ModeSymlink != 0 {
				verr.Issues = append(verr.Issues, Issue{File: dir, Message: "is a symbolic link; meshcd reads only regular files inside the repo"})
			}
			continue
		}
		entries, err := fs.ReadDir(fsys, dir)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			n := e.Name()
			if e.IsDir() || !(strings.HasSuffix(n, ".cue") || n == "design.yaml" || n == "design.yml") {
				continue
			}
			if err := read(path.Join(dir, n), d.Name()); err != nil {
				return nil, tooLarge(err, opts)
			}
		}
	}
	if len(verr.Issues) > 0 {
		verr.sort()
		return nil, verr
	}
	return files, nil
}

var errTooLarge = errors.New("repo too large")

func tooLarge(err error, opts LoadOptions) error {
	if errors.Is(err, errTooLarge) {
		return &ValidationError{Issues: []Issue{{File: ".", Message: fmt.Sprintf("design and cluster files add up to more than %s", bytesText(opts.MaxTotalBytes))}}}
	}
	return err
}

func readDirIfExists(fsys fs.FS, dir string) ([]fs.DirEntry, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return entries, err
}

// lstat reports a file without following a final symbolic link where the file system can
// tell (os.DirFS and os.Root can), and falls back to Stat where it cannot (a Git snapshot has
// its own notion of links).
func lstat(fsys fs.FS, name string) (fs.FileInfo, error) {
	if l, ok := fsys.(fs.ReadLinkFS); ok {
		return l.Lstat(name)
	}
	return fs.Stat(fsys, name)
}

func isCUEOrYAML(name string) bool {
	return strings.HasSuffix(name, ".cue") || strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml")
}

func bytesText(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

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
				if d, fine := loadDesign(ev.design, names[i], cs, verr); fine {
					results[i] = &d
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

func loadDesign(designSchema cue.Value, name string, files []compiled, verr *ValidationError) (Design, bool) {
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
		return d, false
	}
	if err := decode(v, &d); err != nil {
		addCUEErrors(verr, err, files[0].file.path, user, nil)
		return d, false
	}
	d.Name, d.Dir, d.Value = name, "designs/"+name, v
	issues := checkDesign(&d)
	for _, ri := range issues {
		verr.Issues = append(verr.Issues, locate(user, files[0].file.path, ri.path, nil, ri.msg))
	}
	return d, len(issues) == 0
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

// addCUEErrors turns CUE's errors into issues located in the user's files: at CUE's own
// position when it points into a user file, else where the error's path was written.
func addCUEErrors(verr *ValidationError, err error, fallbackFile string, user []userValue, strip []string) {
	errs := cueerrors.Errors(err)
	// CUE explains a value that fits none of the alternatives of a disjunction with one error
	// per alternative; users want one line naming the value and what would fit.
	alternatives := map[string][]string{}
	got := map[string]string{}
	disjunction := map[string]bool{}
	for _, e := range errs {
		format, args := e.Msg()
		msg := fmt.Sprintf(format, args...)
		k := strings.Join(e.Path(), ".")
		if strings.HasSuffix(msg, "errors in empty disjunction:") {
			disjunction[k] = true
		}
		if m := conflictRE.FindStringSubmatch(msg); m != nil {
			alternatives[k] = append(alternatives[k], m[1])
			got[k] = m[2]
		}
	}
	added := false
	defer func() {
		if !added && err != nil {
			verr.Issues = append(verr.Issues, Issue{File: fallbackFile, Message: friendly(err.Error())})
		}
	}()
	for _, e := range errs {
		format, args := e.Msg()
		msg := fmt.Sprintf(format, args...)
		if strings.TrimSpace(msg) == "" {
			// Errors from outside CUE's evaluator (the YAML parser) carry their text only in Error.
			msg = strings.TrimPrefix(e.Error(), fallbackFile+": ")
		}
		if strings.TrimSpace(msg) == "" {
			msg = "cannot be parsed"
		}
		k := strings.Join(e.Path(), ".")
		if alts := alternatives[k]; disjunction[k] && len(alts) > 0 {
			if !strings.HasSuffix(msg, "errors in empty disjunction:") {
				continue
			}
			alts = slices.Compact(slices.Sorted(slices.Values(alts)))
			msg = fmt.Sprintf("%s is not one of %s", got[k], strings.Join(alts, ", "))
		}
		msg = friendly(msg)
		p := cleanPath(e.Path())
		var is Issue
		found := false
		for _, pos := range cueerrors.Positions(e) {
			if pos.IsValid() && pos.Filename() != schemaFile {
				is = Issue{File: pos.Filename(), Line: pos.Line(), Column: pos.Column(), Path: trim(p, strip), Message: msg}
				found = true
				break
			}
		}
		if !found {
			is = locate(user, fallbackFile, p, strip, msg)
		}
		if is.File == "" {
			is.File = fallbackFile
		}
		verr.Issues = append(verr.Issues, is)
		added = true
	}
}

// locate finds where the deepest existing prefix of p was written in the user's files.
func locate(user []userValue, fallbackFile string, p []string, strip []string, msg string) Issue {
	is := Issue{File: fallbackFile, Path: trim(p, strip), Message: msg}
	for n := len(p); n >= 0; n-- {
		sels := make([]cue.Selector, n)
		for i, s := range p[:n] {
			sels[i] = selector(s)
		}
		cp := cue.MakePath(sels...)
		for _, u := range user {
			fv := u.value.LookupPath(cp)
			if !fv.Exists() {
				continue
			}
			if line, col := position(fv); line > 0 {
				is.File, is.Line, is.Column = u.file, line, col
				return is
			}
		}
	}
	return is
}

func selector(s string) cue.Selector {
	if n, err := atoi(s); err == nil {
		return cue.Index(n)
	}
	return cue.Str(s)
}

func atoi(s string) (int, error) {
	if s == "" {
		return 0, errors.New("empty")
	}
	n := 0
	for _, r := range s {
		if r < '0' || r > '9' {
			return 0, errors.New("not a number")
		}
		n = n*10 + int(r-'0')
	}
	return n, nil
}

func position(v cue.Value) (line, col int) {
	if pos := v.Pos(); pos.IsValid() {
		return pos.Line(), pos.Column()
	}
	return 0, 0
}

func trim(p []string, strip []string) string {
	for i, s := range strip {
		if i >= len(p) || p[i] != s {
			return fieldPath(p).String()
		}
	}
	return fieldPath(p[len(strip):]).String()
}

// cleanPath turns a CUE error path into plain labels: without the #Repo definition it was
// checked under, and with quoted labels unquoted.
func cleanPath(p []string) []string {
	if len(p) > 0 && (p[0] == "#Repo" || p[0] == "#Design") {
		p = p[1:]
	}
	out := make([]string, len(p))
	for i, s := range p {
		if u, err := strconv.Unquote(s); err == nil {
			s = u
		}
		out[i] = s
	}
	return out
}

var conflictRE = regexp.MustCompile(`^conflicting values (.+?) and (.+?)(?: \(mismatched types \w+ and \w+\))?$`)

// friendly rewrites CUE's messages that users misread into plain ones.
func friendly(msg string) string {
	switch {
	case strings.HasPrefix(msg, "incomplete value") || strings.Contains(msg, "field is required but not present"):
		return "required field is missing"
	case mismatchRE.MatchString(msg):
		m := mismatchRE.FindStringSubmatch(msg)
		if m[1] == m[3] { // CUE put the type first: "int and "8080" (mismatched types int and string)"
			return fmt.Sprintf("%s is %s, want %s", m[2], article(m[4]), m[3])
		}
		return fmt.Sprintf("%s is %s, want %s", m[1], article(m[3]), m[4])
	case strings.Contains(msg, "does not satisfy time.Duration"):
		if m := invalidValueRE.FindStringSubmatch(msg); m != nil {
			return m[1] + " is not a duration; write it like 300ms, 5s or 1h30m"
		}
	}
	return msg
}

var mismatchRE = regexp.MustCompile(`^conflicting values (.+) and (.+) \(mismatched types (\w+) and (\w+)\)$`)

var invalidValueRE = regexp.MustCompile(`^invalid value (.+?) \(`)

func article(typ string) string {
	if strings.IndexByte("aeiou", typ[0]) >= 0 {
		return "an " + typ
	}
	return "a " + typ
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
