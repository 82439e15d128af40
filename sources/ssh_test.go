package sources

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/meshcd/meshcd/internal/testenv"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// TestSSHWithKnownHosts polls a real SSH endpoint (git-upload-pack run as a process) with a
// private key: a host in known_hosts is trusted, an unknown host key is refused, and no
// known_hosts at all is refused unless insecure mode is asked for.
func TestSSHWithKnownHosts(t *testing.T) {
	srv, repo := gitRepo(t, testenv.GitServerOptions{})
	head, err := repo.Push(t.Context(), "main", map[string][]byte{"clusters/a.cue": []byte("// a\n")}, "start")
	if err != nil {
		t.Fatal(err)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := pem.EncodeToMemory(block)
	clientKey, _ := ssh.NewPublicKey(pub)
	sshd, err := srv.ServeSSH(clientKey)
	if err != nil {
		t.Fatal(err)
	}
	defer sshd.Close()
	url := "ssh://git@" + sshd.Addr + "/fleet.git"
	line := knownhosts.Line([]string{knownhosts.Normalize(sshd.Addr)}, sshd.HostKey)

	auth, err := SSHKey(SSHOptions{PrivateKey: keyPEM, KnownHosts: []byte(line + "\n")})
	if err != nil {
		t.Fatal(err)
	}
	res, err := NewPoller(t.TempDir()).Poll(t.Context(), Repo{URL: url, Auth: auth}, []string{"main"})
	if err != nil {
		t.Fatalf("poll over ssh: %v", err)
	}
	if res[0].Revision != head {
		t.Errorf("revision %s, want %s", res[0].Revision, head)
	}

	otherPub, _, _ := ed25519.GenerateKey(rand.Reader)
	other, _ := ssh.NewPublicKey(otherPub)
	wrong, err := SSHKey(SSHOptions{PrivateKey: keyPEM, KnownHosts: []byte(knownhosts.Line([]string{knownhosts.Normalize(sshd.Addr)}, other) + "\n")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewPoller(t.TempDir()).Poll(t.Context(), Repo{URL: url, Auth: wrong}, []string{"main"}); err == nil || !strings.Contains(err.Error(), "not trusted") {
		t.Errorf("an unknown host key was accepted: %v", err)
	}
	if _, err := SSHKey(SSHOptions{PrivateKey: keyPEM}); err == nil || !strings.Contains(err.Error(), "known_hosts") {
		t.Errorf("no known_hosts should be refused: %v", err)
	}
	if _, err := SSHKey(SSHOptions{PrivateKey: keyPEM, InsecureIgnoreHostKey: true}); err != nil {
		t.Errorf("insecure mode, asked for: %v", err)
	}
}
