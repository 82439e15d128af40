// Command etcd is the upstream etcd server, built from a pinned go.etcd.io/etcd/server/v3
// module so meshcd's test clusters store their state in a real etcd.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
