package server

// connBudget fits the listeners' connection limits (want, by listener) under the
// process's file-descriptor limit, keeping a reserve for everything else that needs a
// descriptor (the database and journal files, issuer links, the admin server and its
// scrapers): without it, terminal sockets up to the limit would lock out /readyz and
// /metrics. With limit 0 (unknown) or enough room, want is returned unchanged;
// otherwise each listener gets its share of the room, at least 1, and lowered is true.
func connBudget(limit uint64, want []int) (got []int, lowered bool) {
	got = append([]int(nil), want...)
	if limit == 0 {
		return got, false
	}
	reserve := max(64, min(1024, limit/4))
	if limit <= reserve {
		reserve = limit / 2
	}
	room := limit - reserve
	var sum uint64
	for _, w := range want {
		sum += uint64(w)
	}
	if sum <= room {
		return got, false
	}
	for i, w := range want {
		got[i] = max(1, int(uint64(w)*room/sum))
	}
	return got, true
}
