package snapshot

// A committed layer can be kept as one EROFS image file instead of a tree of
// files: the kernel mounts the file read-only (file-backed EROFS, Linux 6.12
// and later) and overlayfs stacks the mounts as it stacks directories.
// Unpacking a layer then writes one file sequentially instead of creating an
// inode per tar entry, which is where a directory unpack spends its time
// (see docs/images.md). The image is written here from the layer tar in one
// pass: file data streams into the data area as the tar is read, and the
// metadata (inodes, directories, symlinks) follows at the end, when the tree
// is known.
//
// Layout (no compression, every inode "extended" so that each keeps its own
// mtime, uid and gid):
//
//	byte 1024            superblock
//	byte 1152            (index images) the device table: one slot, the layer tar
//	next block..M-1      regular file data, each file from a block boundary
//	block M (meta_blkaddr) inodes, 32-byte slots (nid = slot number), root first
//	after the inodes     directory blocks, then symlink targets
//
// A full image (WriteImage) has 4 KiB blocks and holds every file's data.
// An index image (WriteIndex) is for a layer whose uncompressed tar is kept
// byte for byte anyway (a loaded or committed layer's blob): it has 512-byte
// blocks, the tar's own block size, and each regular file is one chunk that
// points at the file's data inside the tar, mounted as the image's extra
// device. Such an image holds metadata only, so unpacking writes almost
// nothing; this is EROFS's "tar index" mode (mkfs.erofs --tar=i).
//
// The on-disk format is the kernel's (Documentation/filesystems/erofs.rst,
// include/uapi/linux/erofs_fs.h); github.com/erofs/go-erofs reads the images
// back in the tests.

import (
	"archive/tar"
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/berth-dev/berth/errdefs"
	"golang.org/x/sys/unix"
)

const (
	erofsMagic      = 0xE0F5E1E2
	erofsSuperOff   = 1024
	erofsBlockBits  = 12 // full images
	erofsBlockSize  = 1 << erofsBlockBits
	tarBlockBits    = 9 // index images: the tar's blocks
	erofsDevtOff    = 1152
	erofsInodeSize  = 64 // extended inode
	erofsSlotSize   = 32 // nids count 32-byte slots
	erofsDirentSize = 12
	erofsMaxName    = 255

	// i_format: bit 0 = extended inode, bits 1-3 = data layout (0: flat
	// plain, 4: chunk based).
	erofsFormatExtendedPlain   = 1
	erofsFormatExtendedChunked = 1 | 4<<1
	erofsChunkIndexes          = 0x20 // chunk format: 8-byte indexes follow the inode
	erofsIncompatChunked       = 0x4
	erofsIncompatDeviceTable   = 0x8

	// writebackEvery starts writeback of the image while it is written, so
	// the fsync at the end finds little left to do.
	writebackEvery = 8 << 20
)

// enode is one inode of the image being built.
type enode struct {
	mode     uint32 // S_IF* type and permission bits
	uid, gid uint32
	mtime    time.Time
	size     uint64            // regular files
	blkaddr  uint32            // first data block (regular files, directories, symlinks)
	chunk    uint32            // index images: first tar block of the file's data
	chunked  bool              // data is in the tar (index images)
	rdev     uint32            // devices, new_encode_dev form
	target   string            // symlink
	xattrs   map[string]string // full names
	children map[string]*enode // directories
	parent   *enode            // directories: ".."

	nid   uint64
	nlink uint32
	laid  bool // nid assigned
}

func (n *enode) isDir() bool { return n.mode&unix.S_IFMT == unix.S_IFDIR }

// imageBuilder turns one layer tar into an EROFS image.
type imageBuilder struct {
	f       *os.File
	w       *bufio.Writer
	off     int64 // bytes of the image written so far (data area)
	flushed int64 // offset up to which writeback was started
	root    *enode
	now     time.Time
	size    int64 // regular file bytes
	buf     []byte
	zero    [erofsBlockSize]byte

	bits  uint           // block size bits
	index bool           // file data stays in the tar
	tar   *countedReader // index images: position in the tar
	// seeking: the tar is a file that archive/tar seeks through.
	seeking bool
}

func (b *imageBuilder) bsize() int64 { return 1 << b.bits }

// countedReader counts the bytes read through it.
type countedReader struct {
	r io.Reader
	n int64
}

func (c *countedReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// seekingCountedReader is a countedReader over a file: archive/tar seeks
// over file data instead of reading it, and the count follows.
type seekingCountedReader struct {
	*countedReader
	s    io.Seeker
	base int64
}

func (c seekingCountedReader) Seek(off int64, whence int) (int64, error) {
	pos, err := c.s.Seek(off, whence)
	if err == nil {
		c.n = pos - c.base
	}
	return pos, err
}

// WriteImage writes the uncompressed layer tar r as an EROFS image into f
// (an empty file), with whiteouts in overlay form (0:0 character devices,
// trusted.overlay.opaque=y), and syncs it. It returns the total size of the
// regular files. Paths resolve as Apply resolves them: inside the layer,
// symlinks followed as in a chroot; the same hostile entries are refused
// with an InvalidArgument error.
func WriteImage(ctx context.Context, f *os.File, r io.Reader) (int64, error) {
	return writeImage(ctx, f, r, false)
}

// WriteIndex is WriteImage for a tar that is also kept, byte for byte, in
// a file: the image refers to the file data in it instead of copying it, and
// must be mounted with that file as its device (see mountLayerImage). r must
// be read from the tar's first byte.
func WriteIndex(ctx context.Context, f *os.File, r io.Reader) (int64, error) {
	return writeImage(ctx, f, r, true)
}

func writeImage(ctx context.Context, f *os.File, r io.Reader, index bool) (int64, error) {
	b := &imageBuilder{f: f, now: time.Now(), bits: erofsBlockBits, index: index}
	start := int64(erofsBlockSize)
	if index {
		b.bits = tarBlockBits
		b.tar = &countedReader{r: r}
		r = b.tar
		// A file is not read, only seeked through: headers are all an
		// index needs, and the caller vouches for the data.
		if sk, ok := b.tar.r.(io.Seeker); ok {
			if base, err := sk.Seek(0, io.SeekCurrent); err == nil {
				r = seekingCountedReader{b.tar, sk, base}
				b.seeking = true
			}
		}
		start = (erofsDevtOff + 128 + 1<<tarBlockBits - 1) &^ (1<<tarBlockBits - 1)
	}
	b.root = &enode{mode: unix.S_IFDIR | 0o755, mtime: b.now}
	b.root.parent = b.root
	if _, err := f.Seek(start, io.SeekStart); err != nil {
		return 0, errdefs.System("write layer image: %w", err)
	}
	b.off = start
	b.flushed = b.off
	b.w = bufio.NewWriterSize(f, 1<<20)
	err := eachEntry(ctx, r, func(hdr *tar.Header, data io.Reader) error { return b.entry(ctx, hdr, data) })
	if err != nil {
		return b.size, err
	}
	if err := b.finish(); err != nil {
		return b.size, err
	}
	return b.size, nil
}

// walk resolves the directory path rel (cleaned, relative) from the root,
// following symlinks as in a chroot and creating missing directories.
func (b *imageBuilder) walk(rel string) (*enode, error) {
	if rel == "." || rel == "" {
		return b.root, nil
	}
	comps := strings.Split(rel, "/")
	cur := b.root
	links := 0
	for len(comps) > 0 {
		c := comps[0]
		comps = comps[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			cur = cur.parent
			continue
		}
		if len(c) > erofsMaxName {
			return nil, errdefs.InvalidArgument("layer entry path %q: name too long", rel)
		}
		child := cur.children[c]
		switch {
		case child == nil:
			child = &enode{mode: unix.S_IFDIR | 0o755, mtime: b.now, parent: cur}
			b.link(cur, c, child)
			cur = child
		case child.isDir():
			cur = child
		case child.mode&unix.S_IFMT == unix.S_IFLNK:
			if links++; links > 255 {
				return nil, errdefs.InvalidArgument("layer entry path %q: too many levels of symbolic links", rel)
			}
			t := strings.Split(child.target, "/")
			if strings.HasPrefix(child.target, "/") {
				cur = b.root
			}
			comps = append(t, comps...)
		default:
			return nil, errdefs.InvalidArgument("create parent of layer entry %q: %s is not a directory", rel, c)
		}
	}
	return cur, nil
}

func (b *imageBuilder) link(dir *enode, name string, n *enode) {
	if dir.children == nil {
		dir.children = map[string]*enode{}
	}
	dir.children[name] = n
}

func (b *imageBuilder) entry(ctx context.Context, hdr *tar.Header, r io.Reader) error {
	rel, err := relPath(hdr.Name)
	if err != nil {
		return err
	}
	if rel == "." {
		if hdr.Typeflag != tar.TypeDir {
			return errdefs.InvalidArgument("layer entry %q: the root must be a directory", hdr.Name)
		}
		if err := b.setMeta(b.root, hdr, unix.S_IFDIR); err != nil {
			return err
		}
		return nil
	}
	base := filepath.Base(rel)
	if len(base) > erofsMaxName {
		return errdefs.InvalidArgument("layer entry %q: name too long", hdr.Name)
	}
	kind, deleted, err := classifyEntry(hdr, base)
	if err != nil {
		return err
	}
	switch kind {
	case opaqueEntry:
		dir, err := b.walk(filepath.Dir(rel))
		if err != nil {
			return err
		}
		if dir.xattrs == nil {
			dir.xattrs = map[string]string{}
		}
		dir.xattrs[overlayOpaque] = "y"
		return nil
	case metaEntry:
		return nil
	case whiteoutEntry:
		dir, err := b.walk(filepath.Dir(rel))
		if err != nil {
			return err
		}
		b.link(dir, deleted, &enode{mode: unix.S_IFCHR, mtime: b.now})
		return nil
	}

	dir, err := b.walk(filepath.Dir(rel))
	if err != nil {
		return err
	}
	old := dir.children[base]
	switch hdr.Typeflag {
	case tar.TypeDir:
		if old != nil && old.isDir() {
			if err := b.setMeta(old, hdr, unix.S_IFDIR); err != nil {
				return err
			}
			return nil
		}
		n := &enode{parent: dir}
		if err := b.setMeta(n, hdr, unix.S_IFDIR); err != nil {
			return err
		}
		b.link(dir, base, n)
	case tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse:
		if err := checkSparse(hdr); err != nil {
			return err
		}
		n := &enode{}
		if err := b.setMeta(n, hdr, unix.S_IFREG); err != nil {
			return err
		}
		if err := b.data(ctx, n, hdr, r); err != nil {
			return errdefs.InvalidArgument("write file %q: %w", rel, err)
		}
		b.link(dir, base, n)
	case tar.TypeSymlink:
		if !filepath.IsAbs(hdr.Linkname) {
			t := filepath.Join(filepath.Dir(rel), hdr.Linkname)
			if t == ".." || strings.HasPrefix(t, "../") {
				return errdefs.InvalidArgument("layer entry %q: symlink target %q points outside the layer root", hdr.Name, hdr.Linkname)
			}
		}
		if hdr.Linkname == "" || len(hdr.Linkname) >= 4096 {
			return errdefs.InvalidArgument("layer entry %q: symlink target of %d bytes", hdr.Name, len(hdr.Linkname))
		}
		n := &enode{target: hdr.Linkname}
		if err := b.setMeta(n, hdr, unix.S_IFLNK); err != nil {
			return err
		}
		n.mode = unix.S_IFLNK | 0o777
		b.link(dir, base, n)
	case tar.TypeLink:
		lrel, err := relPath(hdr.Linkname)
		if err != nil || lrel == "." {
			return errdefs.InvalidArgument("layer entry %q: hard link target %q points outside the layer root", hdr.Name, hdr.Linkname)
		}
		ldir, err := b.walk(filepath.Dir(lrel))
		if err != nil {
			return errdefs.InvalidArgument("resolve hard link target %q: %w", hdr.Linkname, err)
		}
		target := ldir.children[filepath.Base(lrel)]
		if target == nil {
			return errdefs.InvalidArgument("layer entry %q: hard link target %q: no such file", hdr.Name, hdr.Linkname)
		}
		if target.isDir() {
			return errdefs.InvalidArgument("layer entry %q: hard link to directory %q", hdr.Name, hdr.Linkname)
		}
		b.link(dir, base, target)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		typ := uint32(unix.S_IFIFO)
		switch hdr.Typeflag {
		case tar.TypeChar:
			typ = unix.S_IFCHR
		case tar.TypeBlock:
			typ = unix.S_IFBLK
		}
		n := &enode{rdev: encodeDev(uint32(hdr.Devmajor), uint32(hdr.Devminor))}
		if err := b.setMeta(n, hdr, typ); err != nil {
			return err
		}
		b.link(dir, base, n)
	case tar.TypeXGlobalHeader:
		return nil
	default:
		return errdefs.InvalidArgument("layer entry %q: unsupported tar type %q", hdr.Name, hdr.Typeflag)
	}
	return nil
}

// encodeDev is the kernel's new_encode_dev.
func encodeDev(major, minor uint32) uint32 {
	return minor&0xff | major<<8 | (minor&^0xff)<<12
}

// setMeta takes mode, owner, xattrs and mtime from hdr.
func (b *imageBuilder) setMeta(n *enode, hdr *tar.Header, typ uint32) error {
	n.mode = typ | uint32(hdr.Mode&0o7777)
	n.uid, n.gid = uint32(hdr.Uid), uint32(hdr.Gid)
	n.mtime = hdr.ModTime
	if n.mtime.IsZero() {
		n.mtime = time.Unix(0, 0)
	}
	for k, v := range hdr.PAXRecords {
		key, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok || strings.HasPrefix(key, "trusted.overlay.") {
			continue // overlay's own attributes would change how the layer stacks
		}
		_, suffix, ok := xattrIndex(key)
		if !ok {
			continue // a namespace EROFS cannot store, as Apply skips ENOTSUP
		}
		if len(suffix) > erofsMaxName || len(v) > 65535 {
			return errdefs.InvalidArgument("layer entry %q: xattr %s too large", hdr.Name, key)
		}
		if n.xattrs == nil {
			n.xattrs = map[string]string{}
		}
		n.xattrs[key] = v
	}
	if xattrSize(n.xattrs) > 64<<10 {
		return errdefs.InvalidArgument("layer entry %q: xattrs too large", hdr.Name)
	}
	return nil
}

// data streams a regular file's contents into the data area or, in an
// index image, notes where they are in the tar.
func (b *imageBuilder) data(ctx context.Context, n *enode, hdr *tar.Header, r io.Reader) error {
	if b.buf == nil {
		b.buf = make([]byte, 256<<10)
	}
	if b.index && !sparse(hdr) && b.seeking {
		// archive/tar seeks over the data on the next Next.
		at := b.tar.n
		if at&(1<<tarBlockBits-1) != 0 || at>>tarBlockBits >= 1<<32-1 {
			return errdefs.InvalidArgument("file data at %d is not a plain run of tar blocks", at)
		}
		b.size += hdr.Size
		n.size = uint64(hdr.Size)
		if hdr.Size > 0 {
			n.chunked = true
			n.chunk = uint32(at >> tarBlockBits)
		}
		return nil
	}
	if b.index && !sparse(hdr) {
		at := b.tar.n
		read, err := discard(ctx, r, b.buf)
		b.size += read
		n.size = uint64(read)
		if err != nil {
			return err
		}
		if at&(1<<tarBlockBits-1) != 0 || b.tar.n-at != read {
			return errdefs.InvalidArgument("file data at %d is not a plain run of tar blocks", at)
		}
		if read > 0 {
			if at>>tarBlockBits >= 1<<32-1 {
				return errdefs.InvalidArgument("layer tar larger than 2 TiB")
			}
			n.chunked = true
			n.chunk = uint32(at >> tarBlockBits)
		}
		return nil
	}
	n.blkaddr = uint32(b.off >> b.bits)
	var written int64
	var err error
	if sparse(hdr) {
		written, err = b.copySparse(ctx, r)
	} else {
		written, err = io.CopyBuffer(b.w, ctxReader{ctx, r}, b.buf)
	}
	b.off += written
	b.size += written
	n.size = uint64(written)
	if err != nil {
		return err
	}
	if pad := -b.off & (b.bsize() - 1); pad != 0 {
		b.w.Write(b.zero[:pad])
		b.off += pad
	}
	if written == 0 {
		n.blkaddr = 0
	}
	if b.off-b.flushed >= writebackEvery {
		if err := b.w.Flush(); err != nil {
			return err
		}
		// Start writeback now; the final fsync then waits for little.
		unix.SyncFileRange(int(b.f.Fd()), b.flushed, b.off-b.flushed, unix.SYNC_FILE_RANGE_WRITE)
		b.flushed = b.off
	}
	return nil
}

// discard reads r to its end in len(buf) pieces (io.Discard's ReadFrom
// would read in 8 KiB ones, and the reader may be feeding a hash and a file).
func discard(ctx context.Context, r io.Reader, buf []byte) (int64, error) {
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n, err := r.Read(buf)
		total += int64(n)
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// inodeSlots is how many 32-byte slots an inode takes with its xattrs and
// chunk index.
func inodeSlots(n *enode) uint64 {
	size := erofsInodeSize + xattrSize(n.xattrs)
	if n.chunked {
		size = (size+7)&^7 + 8
	}
	return uint64((size + erofsSlotSize - 1) / erofsSlotSize)
}

// chunkBits is the chunk size of a chunked file, in block bits above the
// block size: one chunk holds the whole file.
func chunkBits(size uint64) uint16 {
	bits := uint16(0)
	for uint64(1)<<(tarBlockBits+bits) < size {
		bits++
	}
	return bits
}

// copySparse copies a sparse file's contents into the data area, leaving
// holes where whole blocks are zero; it returns the bytes covered. The data
// area's blocks stay in the file's order, so the image stays flat.
func (b *imageBuilder) copySparse(ctx context.Context, r io.Reader) (int64, error) {
	return copyHoles(ctx, r, b.buf, int(b.bsize()), func(p []byte) error {
		_, err := b.w.Write(p)
		return err
	}, func(n int64) error {
		if err := b.w.Flush(); err != nil {
			return err
		}
		_, err := b.f.Seek(n, io.SeekCurrent)
		return err
	})
}

// dirent is one directory entry in on-disk order.
type dirent struct {
	name string
	n    *enode
}

// finish lays out and writes the metadata and the superblock, then syncs.
func (b *imageBuilder) finish() error {
	bs := b.bsize()
	metaBlk := uint32(b.off >> b.bits)

	// Number every inode breadth-first from the root (nid 0), counting
	// links as the tree is walked; directories list "." and "..".
	var order []*enode
	var dirs [][]dirent
	var dirNodes []*enode
	slot := uint64(0)
	assign := func(n *enode) {
		if n.laid {
			return
		}
		n.laid = true
		n.nid = slot
		slot += inodeSlots(n)
		order = append(order, n)
	}
	assign(b.root)
	for q := []*enode{b.root}; len(q) > 0; q = q[1:] {
		d := q[0]
		ents := make([]dirent, 0, len(d.children)+2)
		ents = append(ents, dirent{".", d}, dirent{"..", d.parent})
		subdirs := uint32(0)
		for name, c := range d.children {
			ents = append(ents, dirent{name, c})
			if c.isDir() {
				subdirs++
				c.parent = d
				q = append(q, c)
			} else {
				c.nlink++
			}
			assign(c)
		}
		d.nlink = 2 + subdirs
		sort.Slice(ents, func(i, j int) bool { return ents[i].name < ents[j].name })
		dirs = append(dirs, ents)
		dirNodes = append(dirNodes, d)
	}
	if len(order) >= 1<<32-1 {
		return errdefs.InvalidArgument("layer has too many entries for one image")
	}

	// Directory and symlink blocks follow the inodes.
	inodeBytes := int64(slot) * erofsSlotSize
	next := metaBlk + uint32((inodeBytes+bs-1)>>b.bits)
	dirBlocks := make([][][]dirent, len(dirs))
	for i, ents := range dirs {
		blocks := packDir(ents, int(bs))
		dirBlocks[i] = blocks
		d := dirNodes[i]
		d.blkaddr = next
		next += uint32(len(blocks))
		last := blocks[len(blocks)-1]
		used := uint64(len(last) * erofsDirentSize)
		for _, e := range last {
			used += uint64(len(e.name))
		}
		d.size = uint64(len(blocks)-1)*uint64(bs) + used
	}
	var links []*enode
	for _, n := range order {
		if n.mode&unix.S_IFMT == unix.S_IFLNK {
			n.blkaddr = next
			n.size = uint64(len(n.target))
			next += uint32((int64(n.size) + bs - 1) >> b.bits)
			links = append(links, n)
		}
	}

	// Inodes.
	for i, n := range order {
		if err := b.pad(int64(metaBlk)<<b.bits + int64(n.nid)*erofsSlotSize); err != nil {
			return err
		}
		var ino [erofsInodeSize]byte
		le := binary.LittleEndian
		le.PutUint16(ino[0:], erofsFormatExtendedPlain)
		if n.chunked {
			le.PutUint16(ino[0:], erofsFormatExtendedChunked)
		}
		if xs := xattrSize(n.xattrs); xs > 0 {
			le.PutUint16(ino[2:], uint16((xs-12)/4+1))
		}
		le.PutUint16(ino[4:], uint16(n.mode))
		le.PutUint64(ino[8:], n.size)
		switch n.mode & unix.S_IFMT {
		case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO, unix.S_IFSOCK:
			le.PutUint32(ino[16:], n.rdev)
		case unix.S_IFREG:
			le.PutUint32(ino[16:], n.blkaddr)
			if n.chunked {
				le.PutUint32(ino[16:], uint32(erofsChunkIndexes|chunkBits(n.size)))
			}
		default:
			le.PutUint32(ino[16:], n.blkaddr)
		}
		le.PutUint32(ino[20:], uint32(i+1))
		le.PutUint32(ino[24:], n.uid)
		le.PutUint32(ino[28:], n.gid)
		le.PutUint64(ino[32:], uint64(n.mtime.Unix()))
		le.PutUint32(ino[40:], uint32(n.mtime.Nanosecond()))
		le.PutUint32(ino[44:], n.nlink)
		b.put(ino[:])
		b.put(xattrBody(n.xattrs))
		if n.chunked {
			// One index: device 1 (the tar), the file's first block there.
			if err := b.pad((b.off + 7) &^ 7); err != nil {
				return err
			}
			var idx [8]byte
			le.PutUint16(idx[2:], 1)
			le.PutUint32(idx[4:], n.chunk)
			b.put(idx[:])
		}
	}

	// Directories, then symlinks.
	for i, blocks := range dirBlocks {
		if err := b.pad(int64(dirNodes[i].blkaddr) << b.bits); err != nil {
			return err
		}
		for j, ents := range blocks {
			if j > 0 {
				b.pad(b.off + (-b.off & (bs - 1)))
			}
			nameOff := len(ents) * erofsDirentSize
			for _, e := range ents {
				var de [erofsDirentSize]byte
				binary.LittleEndian.PutUint64(de[0:], e.n.nid)
				binary.LittleEndian.PutUint16(de[8:], uint16(nameOff))
				de[10] = fileType(e.n.mode)
				b.put(de[:])
				nameOff += len(e.name)
			}
			for _, e := range ents {
				b.put([]byte(e.name))
			}
		}
	}
	for _, n := range links {
		if err := b.pad(int64(n.blkaddr) << b.bits); err != nil {
			return err
		}
		b.put([]byte(n.target))
	}
	if err := b.pad(int64(next) << b.bits); err != nil {
		return err
	}
	if err := b.w.Flush(); err != nil {
		return errdefs.System("write layer image: %w", err)
	}

	// The superblock last: until it is written the file is no image.
	var sb [128]byte
	le := binary.LittleEndian
	le.PutUint32(sb[0:], erofsMagic)
	sb[12] = byte(b.bits)
	le.PutUint16(sb[14:], uint16(b.root.nid))
	le.PutUint64(sb[16:], uint64(len(order)))
	le.PutUint64(sb[24:], uint64(b.now.Unix()))
	le.PutUint32(sb[32:], uint32(b.now.Nanosecond()))
	le.PutUint32(sb[36:], next)
	le.PutUint32(sb[40:], metaBlk)
	if b.index {
		le.PutUint32(sb[80:], erofsIncompatChunked|erofsIncompatDeviceTable)
		le.PutUint16(sb[86:], 1)                // extra devices
		le.PutUint16(sb[88:], erofsDevtOff/128) // device table slot
		var slot [128]byte
		le.PutUint32(slot[64:], uint32((b.tar.n+1<<tarBlockBits-1)>>tarBlockBits))
		if _, err := b.f.WriteAt(slot[:], erofsDevtOff); err != nil {
			return errdefs.System("write layer image: %w", err)
		}
	}
	if _, err := b.f.WriteAt(sb[:], erofsSuperOff); err != nil {
		return errdefs.System("write layer image: %w", err)
	}
	if err := b.f.Sync(); err != nil {
		return errdefs.System("sync layer image: %w", err)
	}
	return nil
}

// put appends p to the image.
func (b *imageBuilder) put(p []byte) {
	b.w.Write(p)
	b.off += int64(len(p))
}

// pad writes zeros up to offset to (never backwards).
func (b *imageBuilder) pad(to int64) error {
	if to < b.off {
		return errdefs.System("write layer image: layout overlaps at %d (at %d)", to, b.off)
	}
	for to > b.off {
		n := min(to-b.off, int64(len(b.zero)))
		b.put(b.zero[:n])
	}
	return nil
}

// packDir splits sorted entries into directory blocks: each block holds its
// dirents, then their names.
func packDir(ents []dirent, bs int) [][]dirent {
	var blocks [][]dirent
	start, used := 0, 0
	for i, e := range ents {
		need := erofsDirentSize + len(e.name)
		if used+need > bs {
			blocks = append(blocks, ents[start:i])
			start, used = i, 0
		}
		used += need
	}
	return append(blocks, ents[start:])
}

func fileType(mode uint32) byte {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return 1
	case unix.S_IFDIR:
		return 2
	case unix.S_IFCHR:
		return 3
	case unix.S_IFBLK:
		return 4
	case unix.S_IFIFO:
		return 5
	case unix.S_IFSOCK:
		return 6
	case unix.S_IFLNK:
		return 7
	}
	return 0
}

// xattrIndex maps a full xattr name to EROFS's prefix index and the rest.
func xattrIndex(name string) (byte, string, bool) {
	switch {
	case name == "system.posix_acl_access":
		return 2, "", true
	case name == "system.posix_acl_default":
		return 3, "", true
	case strings.HasPrefix(name, "user."):
		return 1, name[len("user."):], true
	case strings.HasPrefix(name, "trusted."):
		return 4, name[len("trusted."):], true
	case strings.HasPrefix(name, "security."):
		return 6, name[len("security."):], true
	}
	return 0, "", false
}

// xattrSize is the size of an inode's inline xattr area (0 without xattrs).
func xattrSize(x map[string]string) int {
	if len(x) == 0 {
		return 0
	}
	size := 12
	for k, v := range x {
		_, suffix, _ := xattrIndex(k)
		size += (4 + len(suffix) + len(v) + 3) &^ 3
	}
	return size
}

// xattrBody is the inline xattr area: a 12-byte header, then entries.
func xattrBody(x map[string]string) []byte {
	if len(x) == 0 {
		return nil
	}
	out := make([]byte, 12, xattrSize(x))
	for _, k := range slices.Sorted(maps.Keys(x)) {
		idx, suffix, _ := xattrIndex(k)
		v := x[k]
		e := make([]byte, (4+len(suffix)+len(v)+3)&^3)
		e[0] = byte(len(suffix))
		e[1] = idx
		binary.LittleEndian.PutUint16(e[2:], uint16(len(v)))
		copy(e[4:], suffix)
		copy(e[4+len(suffix):], v)
		out = append(out, e...)
	}
	return out
}

// mountLayerImage mounts the EROFS image file img read-only at target; an
// index image names the file holding its tar as device. The new mount API
// passes each option whole, so no path needs escaping.
func mountLayerImage(img, device, target string) error {
	fail := func(step string, err error) error {
		return errdefs.System("mount layer image %s on %s: %s: %w", img, target, step, err)
	}
	fd, err := unix.Fsopen("erofs", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return fail("fsopen", err)
	}
	defer unix.Close(fd)
	if err := unix.FsconfigSetString(fd, "source", img); err != nil {
		return fail("source", err)
	}
	if device != "" {
		if err := unix.FsconfigSetString(fd, "device", device); err != nil {
			return fail("device "+device, err)
		}
	}
	if err := unix.FsconfigSetFlag(fd, "ro"); err != nil {
		return fail("ro", err)
	}
	if err := unix.FsconfigCreate(fd); err != nil {
		return fail("create", err)
	}
	if err := attachMount(fd, unix.MOUNT_ATTR_RDONLY, target); err != nil {
		return fail("mount", err)
	}
	return nil
}
