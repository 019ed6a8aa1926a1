package container

import (
	"crypto/rand"
	"math/big"
)

// Docker-style generated names: adjective_surname.
var (
	adjectives = []string{"admiring", "brave", "calm", "clever", "eager", "elegant", "focused", "gallant", "happy", "jolly", "keen", "loving", "nifty", "peaceful", "quirky", "serene", "sharp", "stoic", "tender", "vibrant", "wizardly", "zealous"}
	surnames   = []string{"archimedes", "babbage", "curie", "darwin", "euclid", "fermi", "galileo", "hopper", "hypatia", "kepler", "lamport", "lovelace", "mccarthy", "noether", "pike", "ritchie", "shannon", "thompson", "torvalds", "turing", "wozniak"}
)

func pick(list []string) string {
	n, err := rand.Int(rand.Reader, big.NewInt(int64(len(list))))
	if err != nil {
		return list[0]
	}
	return list[n.Int64()]
}

// GenerateName returns a free "/adjective_surname" name.
func GenerateName(inUse func(string) bool) string {
	for i := 0; ; i++ {
		name := "/" + pick(adjectives) + "_" + pick(surnames)
		if i > 10 {
			name += NewID()[:4]
		}
		if !inUse(name) {
			return name
		}
	}
}
