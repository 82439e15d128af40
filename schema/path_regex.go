package schema

import (
	"regexp/syntax"
	"strings"
)

// mayMatchUnder reports whether a path regex (matched whole) matches the prefix itself or
// some path under it: it runs the prefix through the expression's automaton, then asks
// whether a match is still reachable. Word boundaries and anchors are taken as passable, so
// the answer errs towards yes.
func mayMatchUnder(re, prefix string) bool {
	parsed, err := syntax.Parse("^(?:"+re+")$", syntax.Perl)
	if err != nil {
		return false // refused on its own
	}
	prog, err := syntax.Compile(parsed.Simplify())
	if err != nil {
		return false
	}
	states := closure(prog, []uint32{uint32(prog.Start)})
	base := strings.TrimSuffix(prefix, "/")
	for _, r := range base {
		states = closure(prog, step(prog, states, r))
	}
	for _, pc := range states {
		if prog.Inst[pc].Op == syntax.InstMatch {
			return true // the prefix itself
		}
	}
	return reachesMatch(prog, closure(prog, step(prog, states, '/')))
}

// closure adds the states reachable without reading a character.
func closure(prog *syntax.Prog, pcs []uint32) []uint32 {
	seen := map[uint32]bool{}
	var out []uint32
	for len(pcs) > 0 {
		pc := pcs[len(pcs)-1]
		pcs = pcs[:len(pcs)-1]
		if seen[pc] {
			continue
		}
		seen[pc] = true
		out = append(out, pc)
		switch in := prog.Inst[pc]; in.Op {
		case syntax.InstAlt, syntax.InstAltMatch:
			pcs = append(pcs, in.Out, in.Arg)
		case syntax.InstCapture, syntax.InstNop, syntax.InstEmptyWidth:
			pcs = append(pcs, in.Out)
		}
	}
	return out
}

// step is where the states go on reading r.
func step(prog *syntax.Prog, pcs []uint32, r rune) []uint32 {
	var out []uint32
	for _, pc := range pcs {
		switch in := prog.Inst[pc]; in.Op {
		case syntax.InstRune, syntax.InstRune1, syntax.InstRuneAny, syntax.InstRuneAnyNotNL:
			if in.MatchRune(r) {
				out = append(out, in.Out)
			}
		}
	}
	return out
}

// reachesMatch reports whether some input leads from the states to a match.
func reachesMatch(prog *syntax.Prog, pcs []uint32) bool {
	seen := map[uint32]bool{}
	for len(pcs) > 0 {
		pc := pcs[len(pcs)-1]
		pcs = pcs[:len(pcs)-1]
		if seen[pc] {
			continue
		}
		seen[pc] = true
		switch in := prog.Inst[pc]; in.Op {
		case syntax.InstMatch:
			return true
		case syntax.InstAlt, syntax.InstAltMatch:
			pcs = append(pcs, in.Out, in.Arg)
		case syntax.InstFail:
		default:
			pcs = append(pcs, in.Out)
		}
	}
	return false
}
