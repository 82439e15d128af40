package testenv

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
)

// SSHServer serves the Git server's repos over SSH (git-upload-pack and git-receive-pack run
// as processes, like on a real host) to one authorized key.
type SSHServer struct {
	Addr    string
	HostKey ssh.PublicKey
	l       net.Listener
	wg      sync.WaitGroup
}

// ServeSSH starts an SSH endpoint for the server's repos on loopback that accepts only the
// given client key.
func (s *GitServer) ServeSSH(authorized ssh.PublicKey) (*SSHServer, error) {
	_, hostPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	signer, err := ssh.NewSignerFromKey(hostPriv)
	if err != nil {
		return nil, err
	}
	cfg := &ssh.ServerConfig{PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
		if string(key.Marshal()) == string(authorized.Marshal()) {
			return nil, nil
		}
		return nil, fmt.Errorf("unknown key")
	}}
	cfg.AddHostKey(signer)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &SSHServer{Addr: l.Addr().String(), HostKey: signer.PublicKey(), l: l}
	srv.wg.Go(func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go s.serveSSHConn(conn, cfg)
		}
	})
	return srv, nil
}

// Close stops accepting connections.
func (s *SSHServer) Close() {
	s.l.Close()
	s.wg.Wait()
}

func (s *GitServer) serveSSHConn(conn net.Conn, cfg *ssh.ServerConfig) {
	defer conn.Close()
	_, chans, reqs, err := ssh.NewServerConn(conn, cfg)
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "session only")
			continue
		}
		ch, requests, err := nc.Accept()
		if err != nil {
			return
		}
		go s.serveSession(ch, requests)
	}
}

func (s *GitServer) serveSession(ch ssh.Channel, requests <-chan *ssh.Request) {
	defer ch.Close()
	for req := range requests {
		if req.Type != "exec" || len(req.Payload) < 4 {
			req.Reply(req.Type == "env", nil)
			continue
		}
		n := binary.BigEndian.Uint32(req.Payload)
		command := string(req.Payload[4 : 4+n])
		service, arg, _ := strings.Cut(command, " ")
		if service != "git-upload-pack" && service != "git-receive-pack" {
			req.Reply(false, nil)
			return
		}
		repo := filepath.Join(s.root, filepath.Base(strings.Trim(arg, `'"/`)))
		req.Reply(true, nil)
		cmd := exec.Command(service, repo)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = ch, ch, ch.Stderr()
		status := uint32(0)
		if err := cmd.Run(); err != nil {
			status = 1
		}
		ch.SendRequest("exit-status", false, binary.BigEndian.AppendUint32(nil, status))
		return
	}
}
