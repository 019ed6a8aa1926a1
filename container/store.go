package container

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/metadata"
	bolt "go.etcd.io/bbolt"
)

// Store keeps every container in memory and persists each change in one
// bbolt transaction, so a crash leaves either the old or the new record.
type Store struct {
	db *bolt.DB

	mu     sync.RWMutex
	byID   map[string]*Container
	byName map[string]string // "/name" -> id
}

// NewStore loads every container record from db.
func NewStore(db *bolt.DB) (*Store, error) {
	s := &Store{db: db, byID: map[string]*Container{}, byName: map[string]string{}}
	err := db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(metadata.BucketContainers).ForEach(func(k, v []byte) error {
			c := &Container{}
			if err := json.Unmarshal(v, c); err != nil {
				return fmt.Errorf("decode container record %s: %w", k, err)
			}
			s.byID[c.ID] = c
			s.byName[c.Name] = c.ID
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Add reserves c's name and persists it. The name must be free.
func (s *Store) Add(c *Container) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id, ok := s.byName[c.Name]; ok {
		return errdefs.Conflict("Conflict. The container name %q is already in use by container %q. You have to remove (or rename) that container to be able to reuse that name.", c.Name, id)
	}
	if err := s.put(c); err != nil {
		return err
	}
	s.byID[c.ID] = c
	s.byName[c.Name] = c.ID
	return nil
}

// Save persists c; call with c locked.
func (s *Store) Save(c *Container) error { return s.put(c) }

func (s *Store) put(c *Container) error {
	data, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode container %s: %w", c.ID, err)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(metadata.BucketContainers).Put([]byte(c.ID), data); err != nil {
			return err
		}
		return tx.Bucket(metadata.BucketNames).Put([]byte(c.Name), []byte(c.ID))
	})
}

// Rename moves c to newName atomically; call with c locked.
func (s *Store) Rename(c *Container, newName string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id, ok := s.byName[newName]; ok {
		return errdefs.Conflict("Conflict. The container name %q is already in use by container %q. You have to remove (or rename) that container to be able to reuse that name.", newName, id)
	}
	old := c.Name
	c.Name = newName
	data, err := json.Marshal(c)
	if err != nil {
		c.Name = old
		return err
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		names := tx.Bucket(metadata.BucketNames)
		if err := names.Delete([]byte(old)); err != nil {
			return err
		}
		if err := names.Put([]byte(newName), []byte(c.ID)); err != nil {
			return err
		}
		return tx.Bucket(metadata.BucketContainers).Put([]byte(c.ID), data)
	})
	if err != nil {
		c.Name = old
		return fmt.Errorf("rename container %s: %w", c.ID, err)
	}
	delete(s.byName, old)
	s.byName[newName] = c.ID
	return nil
}

// Delete forgets c.
func (s *Store) Delete(c *Container) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(metadata.BucketContainers).Delete([]byte(c.ID)); err != nil {
			return err
		}
		return tx.Bucket(metadata.BucketNames).Delete([]byte(c.Name))
	})
	if err != nil {
		return fmt.Errorf("delete container %s: %w", c.ID, err)
	}
	delete(s.byID, c.ID)
	delete(s.byName, c.Name)
	return nil
}

// Get finds a container by full id, name (with or without slash) or a
// unique id prefix, the way Docker resolves references.
func (s *Store) Get(ref string) (*Container, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if ref == "" {
		return nil, errdefs.NotFound("No such container: %s", ref)
	}
	if c, ok := s.byID[ref]; ok {
		return c, nil
	}
	name := ref
	if !strings.HasPrefix(name, "/") {
		name = "/" + name
	}
	if id, ok := s.byName[name]; ok {
		return s.byID[id], nil
	}
	var found *Container
	for id, c := range s.byID {
		if strings.HasPrefix(id, ref) {
			if found != nil {
				return nil, errdefs.InvalidArgument("multiple IDs found with provided prefix: %s", ref)
			}
			found = c
		}
	}
	if found == nil {
		return nil, errdefs.NotFound("No such container: %s", ref)
	}
	return found, nil
}

// List returns every container, newest first.
func (s *Store) List() []*Container {
	s.mu.RLock()
	out := make([]*Container, 0, len(s.byID))
	for _, c := range s.byID {
		out = append(out, c)
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return out
}

// NameInUse reports whether "/name" is taken.
func (s *Store) NameInUse(name string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.byName[name]
	return ok
}
