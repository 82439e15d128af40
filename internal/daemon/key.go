package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/meshcd/meshcd/render"
)

// secretKeyFile holds the key of the daemon's Secret digests, in its cache folder.
const secretKeyFile = "secret-digest.key"

// loadSecretKey reads the daemon's Secret digest key from the cache folder, making it on the
// first start. It outlives restarts, so a restarted daemon digests every Secret as before and
// writes nothing; only the daemon can read it (0600). Without a cache folder the key lives as
// long as the process.
func loadSecretKey(cacheDir string) ([]byte, error) {
	if cacheDir == "" {
		return render.NewSecretKey(), nil
	}
	p := filepath.Join(cacheDir, secretKeyFile)
	key, err := os.ReadFile(p)
	if err == nil && len(key) >= 32 {
		return key, nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("reading the Secret digest key %s: %w", p, err)
	}
	if err := os.MkdirAll(cacheDir, 0o700); err != nil {
		return nil, err
	}
	key = render.NewSecretKey()
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, key, 0o600); err != nil {
		return nil, fmt.Errorf("writing the Secret digest key: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return nil, fmt.Errorf("writing the Secret digest key: %w", err)
	}
	return key, nil
}
