package sources

import (
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/go-git/go-git/v5/plumbing/transport"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// SSHOptions are an SSH private key and how the server's host key is checked.
type SSHOptions struct {
	User       string
	PrivateKey []byte // PEM
	Passphrase string
	// KnownHosts is the content of a known_hosts file. Without it the key is refused unless
	// InsecureIgnoreHostKey is set, which accepts any server (a man in the middle included).
	KnownHosts            []byte
	InsecureIgnoreHostKey bool
}

// SSHKey returns go-git auth for an SSH URL that verifies the server against known_hosts.
func SSHKey(o SSHOptions) (transport.AuthMethod, error) {
	if o.User == "" {
		o.User = "git"
	}
	auth, err := gitssh.NewPublicKeys(o.User, o.PrivateKey, o.Passphrase)
	if err != nil {
		return nil, fmt.Errorf("ssh private key: %w", err)
	}
	switch {
	case len(o.KnownHosts) > 0:
		cb, err := knownHostsCallback(o.KnownHosts)
		if err != nil {
			return nil, err
		}
		auth.HostKeyCallback = cb
	case o.InsecureIgnoreHostKey:
		auth.HostKeyCallback = ssh.InsecureIgnoreHostKey()
	default:
		return nil, errors.New("ssh: no known_hosts given; refusing to trust any host key (set insecureIgnoreHostKey to allow it)")
	}
	return auth, nil
}

// knownHostsCallback checks host keys against known_hosts content with the knownhosts
// package (hashed names, markers and all), which reads only files: the content is written
// to a private temporary file first.
func knownHostsCallback(data []byte) (ssh.HostKeyCallback, error) {
	f, err := os.CreateTemp("", "meshcd-known-hosts-")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	cb, err := knownhosts.New(f.Name())
	if err != nil {
		return nil, fmt.Errorf("known_hosts: %w", err)
	}
	return func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		if err := cb(hostname, remote, key); err != nil {
			return fmt.Errorf("ssh: host key of %s (%s) is not trusted by known_hosts: %w", hostname, ssh.FingerprintSHA256(key), err)
		}
		return nil
	}, nil
}
