package incidents

import (
	"maps"
	"slices"
)

const (
	// maxTrackedUsers bounds the user hashes one tracker remembers; more
	// users make the count an upper bound.
	maxTrackedUsers = 100_000
	// maxListedUsers bounds the user hashes an incident lists per
	// contribution, so that replicas' counts merge exactly without making
	// the incident document large.
	maxListedUsers = 1000
)

// mergeUsers counts the distinct users across contributions: exactly, as
// the union of their hash lists, when every contribution with users listed
// them all; otherwise as the sum of their counts, an upper bound (a user
// seen by two replicas counts twice).
func mergeUsers(cs map[string]Contribution) (users int64, atMost bool, hashes []string) {
	union := map[string]struct{}{}
	exact := true
	var sum int64
	for _, c := range cs {
		sum += c.Scope.Users
		atMost = atMost || c.Scope.UsersAtMost
		if int64(len(c.Scope.UserHashes)) != c.Scope.Users {
			exact = false
			continue
		}
		for _, h := range c.Scope.UserHashes {
			union[h] = struct{}{}
		}
	}
	switch {
	case !exact:
		return sum, atMost || len(cs) > 1, nil
	case len(union) > maxListedUsers:
		return int64(len(union)), atMost, nil
	}
	return int64(len(union)), atMost, slices.Sorted(maps.Keys(union))
}
