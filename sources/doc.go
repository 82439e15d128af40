// Package sources will own everything meshcd does with Git: polling repos and refs (branches,
// tags, semver ranges, commits, pull-request refs) with go-git, credentials, webhooks, cron
// triggers, and committing status files back with fetch-rebase-retry. It does not parse designs.
package sources
