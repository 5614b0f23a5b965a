// Command dupes measures what repeats in the tree's Go code: blocks of six
// or more lines that appear more than once, after trimming indentation and
// leaving out blank lines, comments, package clauses, imports and lines of
// a lone brace. It prints
// the share of lines that repeat, for code and tests apart, and the
// blocks, longest first.
//
//	go run ./scripts/dupes [-min 6] [-show 20] [dir]
package main

import (
	"bufio"
	"cmp"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// line is one kept line of a file: its text, trimmed, and where it is.
type line struct {
	text string
	file string
	no   int
}

func main() {
	minLines := flag.Int("min", 6, "the fewest lines a repeated block has")
	show := flag.Int("show", 20, "how many repeated blocks to list")
	flag.Parse()
	root := "."
	if flag.NArg() > 0 {
		root = flag.Arg(0)
	}
	files, err := goFiles(root)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code, tests := map[string][]line{}, map[string][]line{}
	for _, f := range files {
		ls, err := keptLines(f)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if strings.HasSuffix(f, "_test.go") {
			tests[f] = ls
		} else {
			code[f] = ls
		}
	}
	for _, part := range []struct {
		name  string
		files map[string][]line
	}{{"code", code}, {"tests", tests}} {
		total, repeated, blocks := measure(part.files, *minLines)
		fmt.Printf("%s: %d of %d lines (%.1f%%) in blocks of %d or more lines that repeat\n", part.name, repeated, total, 100*float64(repeated)/float64(max(total, 1)), *minLines)
		for _, b := range blocks[:min(*show, len(blocks))] {
			fmt.Printf("  %3d lines: %s\n", b.lines, strings.Join(b.places, ", "))
		}
	}
}

func goFiles(root string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".") && p != root) {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, ".go") {
			out = append(out, p)
		}
		return nil
	})
	return out, err
}

func keptLines(path string) ([]line, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []line
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	imports := false // inside an import block, which repeats by nature
	for no := 1; sc.Scan(); no++ {
		t := strings.TrimSpace(sc.Text())
		switch {
		case t == "import (":
			imports = true
			continue
		case imports:
			imports = t != ")"
			continue
		case t == "", strings.HasPrefix(t, "//"), strings.HasPrefix(t, "package "), strings.HasPrefix(t, "import "), strings.Trim(t, "{}()[], ") == "":
			continue
		}
		out = append(out, line{t, path, no})
	}
	return out, sc.Err()
}

// block is a run of lines that appears in more than one place.
type block struct {
	lines  int
	places []string
}

// measure finds every window of n kept lines that appears more than once,
// marks the lines such windows cover, and joins overlapping windows of the
// same places into blocks.
func measure(files map[string][]line, n int) (total, repeated int, blocks []block) {
	seen := map[string][]line{} // a window's text → where each copy starts
	var order []string
	for _, ls := range files {
		total += len(ls)
	}
	names := make([]string, 0, len(files))
	for f := range files {
		names = append(names, f)
	}
	slices.Sort(names)
	for _, f := range names {
		ls := files[f]
		for i := 0; i+n <= len(ls); i++ {
			var b strings.Builder
			for _, l := range ls[i : i+n] {
				b.WriteString(l.text)
				b.WriteByte('\n')
			}
			k := b.String()
			if _, ok := seen[k]; !ok {
				order = append(order, k)
			}
			seen[k] = append(seen[k], ls[i])
		}
	}
	covered := map[string]map[int]bool{} // file → indexes of kept lines repeated
	index := map[string]map[int]int{}    // file → line number → index
	for f, ls := range files {
		index[f] = map[int]int{}
		for i, l := range ls {
			index[f][l.no] = i
		}
	}
	type run struct {
		starts []line
		length int
	}
	runs := map[string]*run{} // the places of a run, joined → the run
	var runOrder []string
	for _, k := range order {
		starts := seen[k]
		if len(starts) < 2 {
			continue
		}
		var key []string
		for _, s := range starts {
			i := index[s.file][s.no]
			if covered[s.file] == nil {
				covered[s.file] = map[int]bool{}
			}
			for j := i; j < i+n; j++ {
				covered[s.file][j] = true
			}
			key = append(key, s.file)
		}
		// Consecutive windows of the same files extend one block.
		id := strings.Join(key, "|")
		if r := runs[id]; r != nil && extends(r.starts, starts, index, r.length-n+1) {
			r.length++
			continue
		}
		runs[id] = &run{starts: starts, length: n}
		runOrder = append(runOrder, id+fmt.Sprint(len(runOrder)))
		runs[runOrder[len(runOrder)-1]] = runs[id]
	}
	for _, c := range covered {
		repeated += len(c)
	}
	done := map[*run]bool{}
	for _, id := range runOrder {
		r := runs[id]
		if done[r] {
			continue
		}
		done[r] = true
		var places []string
		for _, s := range r.starts {
			places = append(places, fmt.Sprintf("%s:%d", s.file, s.no))
		}
		blocks = append(blocks, block{lines: r.length, places: places})
	}
	slices.SortStableFunc(blocks, func(a, b block) int { return cmp.Compare(b.lines, a.lines) })
	return total, repeated, blocks
}

// extends reports whether the windows at next each start step kept lines
// after those at first.
func extends(first, next []line, index map[string]map[int]int, step int) bool {
	if len(first) != len(next) {
		return false
	}
	for i := range first {
		if first[i].file != next[i].file || index[next[i].file][next[i].no]-index[first[i].file][first[i].no] != step {
			return false
		}
	}
	return true
}
