// Package metadata owns metadata.db, the bbolt database that maps names to
// digests and holds container, network and volume records.
//
// Schema (one bucket per resource; every change is one bbolt transaction):
//
//	metadata.db
//	├── images/            <image id "sha256:…">  -> JSON image record (config digest, manifest digest, created, chain id)
//	├── references/        <normalised name:tag>  -> image id
//	├── containers/        <container id>         -> JSON container record (config, host config, state)
//	├── names/             <"/name">              -> container id
//	├── networks/          <network id>           -> JSON network record
//	├── volumes/           <volume name>          -> JSON volume record
//	└── leases/            <lease id>             -> blob digests kept alive while an operation runs
//
// Each owning package (image, container, network, volume) reads and writes only
// its own buckets through the *bolt.DB returned by Open.
package metadata
