// Package volume owns named volumes: their records in metadata.db, their
// directories under the data root, reference counting by container, the
// local driver's device mounts and the copy of image content into an empty
// volume.
//
// On disk:
//
//	<data-root>/volumes/            0701
//	├── <name>/                     0701, renamed into place whole (never half made)
//	│   └── _data/                  the volume's content, bind-mounted into containers;
//	│                               with driver options (-o type/device/o) the device is mounted here
//	└── .create-<name>-<rand>/      a create in progress; removed at start-up
//
//	metadata.db
//	└── volumes/<name> -> JSON Volume record (name, driver, labels, options, created)
//
// The record is the commit point: a volume exists once its record is
// written, and only after its directory was renamed into place. Removal
// deletes the record first and the directory after. NewStore removes
// directories without a record (a create or remove cut short by a crash)
// and recreates the directory of a record that lost it, so a kill -9 at
// any moment leaves a consistent store.
//
// References are held in memory by container id: the daemon acquires them
// when it creates a container and again for every stored container when it
// starts, and releases them when the container is removed.
package volume
