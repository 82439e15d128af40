package render

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"sort"
	"sync"

	"github.com/meshcd/meshcd/internal/version"
	"github.com/meshcd/meshcd/schema"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/lru"
	"sigs.k8s.io/yaml"
)

// Repo is one snapshot of a fleet repo for rendering. Its in-memory copy for kustomize and
// Helm is made once, on the first render that needs it, and shared by all designs.
type Repo struct {
	files fs.FS
	once  sync.Once
	copy  *repoFiles
	err   error
}

// NewRepo wraps a snapshot (a Git tree or a folder) for rendering.
func NewRepo(files fs.FS) *Repo { return &Repo{files: files} }

func (r *Repo) repoFiles() (*repoFiles, error) {
	r.once.Do(func() { r.copy, r.err = copyRepo(r.files) })
	return r.copy, r.err
}

// Cache keeps bundles by the hash of exactly what went into them: the design, the cluster,
// meshcd's version, and the content of every file the design can read. A commit that changes
// one design re-renders only that design. It keeps at most max bundles, the least recently
// used leaving first (k8s.io/utils/lru), and at most PerSlot for one design on one cluster: a
// bundle replaced by a newer render of the same design is seldom asked for again, so a daemon
// following a busy repo keeps a bounded set however many commits it sees. It is safe for
// concurrent use.
type Cache struct {
	mu     sync.Mutex
	lru    *lru.Cache
	slots  map[string][]string // design + cluster -> keys, oldest first
	slotOf map[string]string
	stats  CacheStats
}

// PerSlot is how many bundles the cache keeps for one design on one cluster: the applied one
// and those of pull requests being previewed.
const PerSlot = 3

// CacheStats counts what the cache saved.
type CacheStats struct {
	Hits, Misses int
}

// NewCache keeps at most max bundles.
func NewCache(max int) *Cache {
	c := &Cache{slots: map[string][]string{}, slotOf: map[string]string{}}
	c.lru = lru.NewWithEvictionFunc(max, func(k lru.Key, _ any) { c.forget(k.(string)) })
	return c
}

// Len is how many bundles the cache holds.
func (c *Cache) Len() int { return c.lru.Len() }

// Stats returns the hits and misses so far.
func (c *Cache) Stats() CacheStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

func (c *Cache) get(key string) *Bundle {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.lru.Get(key)
	if ok {
		c.stats.Hits++
		return v.(*Bundle)
	}
	c.stats.Misses++
	return nil
}

func (c *Cache) put(key, slot string, b *Bundle) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.slotOf[key]; !ok {
		c.slotOf[key] = slot
		c.slots[slot] = append(c.slots[slot], key)
	}
	c.lru.Add(key, b)
	for len(c.slots[slot]) > PerSlot {
		c.lru.Remove(c.slots[slot][0])
	}
}

// forget drops an evicted key from its slot; the LRU calls it, under c.mu.
func (c *Cache) forget(key string) {
	slot, ok := c.slotOf[key]
	if !ok {
		return
	}
	delete(c.slotOf, key)
	keys := slices.DeleteFunc(c.slots[slot], func(k string) bool { return k == key })
	if len(keys) == 0 {
		delete(c.slots, slot)
	} else {
		c.slots[slot] = keys
	}
}

// withRevision returns a copy of a cached bundle stamped with another revision.
func withRevision(b *Bundle, revision string) *Bundle {
	out := *b
	out.Revision = revision
	out.Objects = make([]*unstructured.Unstructured, len(b.Objects))
	for i, o := range b.Objects {
		out.Objects[i] = o.DeepCopy()
	}
	out.Warnings = append([]string(nil), b.Warnings...)
	return &out
}

// cacheKey hashes everything a render of d for c reads.
func cacheKey(d *schema.Design, c *schema.Cluster, files fs.FS, secretKey []byte) (string, error) {
	h := sha256.New()
	keyID := sha256.Sum256(secretKey) // bundles digested with another Secret key are others
	fmt.Fprintf(h, "secret key %x\n", keyID[:8])
	design, err := json.Marshal(d)
	if err != nil {
		return "", err
	}
	cluster, err := json.Marshal(struct {
		Name string
		*schema.Cluster
	}{c.Name, c})
	if err != nil {
		return "", err
	}
	fmt.Fprintf(h, "meshcd %s\ndesign %s %s\nnamespace owner %v\ncluster %s\n", version.Get().Version, d.Name, design, d.NamespaceOwner, cluster)
	if len(d.Manifests) > 0 && files != nil {
		dirs, err := inputDirs(files, d.Dir)
		if err != nil {
			return "", err
		}
		for _, dir := range dirs {
			if err := hashTree(h, files, dir); err != nil {
				return "", err
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// inputDirs are the folders a design's manifests can read: its own folder, and any folder a
// kustomization inside reaches outside it (followed through further kustomizations).
func inputDirs(files fs.FS, designDir string) ([]string, error) {
	seen := map[string]bool{}
	var walk func(dir string) error
	walk = func(dir string) error {
		if seen[dir] {
			return nil
		}
		seen[dir] = true
		return fs.WalkDir(files, dir, func(p string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() {
				return err
			}
			switch path.Base(p) {
			case "kustomization.yaml", "kustomization.yml", "Kustomization":
			default:
				return nil
			}
			data, err := fs.ReadFile(files, p)
			if err != nil {
				return nil // the renderer reports unreadable files
			}
			var k kustomizationRefs
			if yaml.Unmarshal(data, &k) != nil {
				return nil
			}
			for _, ref := range append(append(k.Resources, k.Bases...), k.Components...) {
				target := path.Clean(path.Join(path.Dir(p), ref))
				if looksRemote(ref) || !fs.ValidPath(target) || withinAny(target, seen) {
					continue
				}
				if info, err := fs.Stat(files, target); err == nil && info.IsDir() {
					if err := walk(target); err != nil {
						return err
					}
				}
			}
			return nil
		})
	}
	if err := walk(designDir); err != nil {
		return nil, err
	}
	out := make([]string, 0, len(seen))
	for d := range seen {
		out = append(out, d)
	}
	sort.Strings(out)
	return out, nil
}

func withinAny(p string, dirs map[string]bool) bool {
	for d := range dirs {
		if p == d || len(p) > len(d) && p[:len(d)+1] == d+"/" {
			return true
		}
	}
	return false
}

func hashTree(h io.Writer, files fs.FS, dir string) error {
	return fs.WalkDir(files, dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		if e.Type()&fs.ModeSymlink != 0 {
			fmt.Fprintf(h, "link %s\n", p)
			return nil
		}
		data, err := fs.ReadFile(files, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		fmt.Fprintf(h, "file %s %x\n", p, sum)
		return nil
	})
}
