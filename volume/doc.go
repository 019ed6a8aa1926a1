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
//	├── .create-<name>-<rand>/      a create in progress
//	└── .remove-<name>-<rand>/      a removal in progress
//
//	metadata.db
//	└── volumes/<name> -> JSON Volume record (name, driver, labels, options, created)
//
// The record is the commit point of a create: a volume exists once its
// record is written, and only after its directory was renamed into place.
// A removal renames the directory to .remove-… first and deletes the
// record after, so the rename is its commit point. NewStore rolls both
// forward after a crash: .create-… directories and volume directories that
// hold only an empty _data but have no record are removed, .remove-…
// directories lose their record and are removed, and a record that lost its
// directory gets an empty one. It deletes nothing else it finds, so a
// kill -9 at any moment leaves a consistent store and never costs data that
// was not being removed.
//
// References are held in memory by container id: the daemon acquires them
// when it creates a container and again for every stored container when it
// starts, and releases them when the container is removed.
package volume
