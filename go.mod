module github.com/berth-dev/berth

go 1.26.8

require go.etcd.io/bbolt v1.5.0

require golang.org/x/sys v0.50.0 // indirect
