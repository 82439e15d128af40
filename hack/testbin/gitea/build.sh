#!/usr/bin/env bash
# Builds Gitea (the Git host meshcd's pull-request feedback is tested against) from its Go
# module at the version pinned below, into $1. Gitea's go.mod pins versions with replace
# directives, which `go install` refuses, so it is built inside the module's own folder as the
# Go module proxy serves it, with SQLite. Takes about 6 minutes the first time.
set -euo pipefail
version=v1.27.3
out=$1
info=$(cd /tmp && go mod download -json "code.gitea.io/gitea@$version")
dir=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p' <<<"$info")
cd "$dir"
go build -trimpath -tags 'sqlite sqlite_unlock_notify' -ldflags '-s -w' -o "$out.tmp" .
mv "$out.tmp" "$out"
