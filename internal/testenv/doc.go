// Package testenv starts the real systems meshcd's tests run against: Kubernetes clusters made
// of a real etcd and a real kube-apiserver (built from pinned modules by `make testbin`), with
// the CRDs meshcd renders to, and a real Git server speaking smart HTTP through
// `git http-backend`. Nothing here is a fake: what passes here passes against the real thing.
//
// Every process testenv starts dies with the test binary, even when the binary is killed
// (Linux parent-death signal), and Stop removes everything it created.
package testenv
