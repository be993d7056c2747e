package plan

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/drplane/drplane/internal/calendar"
	"github.com/drplane/drplane/internal/hclpos"
	"github.com/drplane/drplane/internal/names"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// The blocks Parse reads, as gohcl decodes them. Durations stay strings
// until they are parsed with their positions; pointers tell an absent key
// from a zero one.
type rawObjectives struct {
	RTO *string `hcl:"rto,optional"`
	RPO *string `hcl:"rpo,optional"`
}

// rawTopObjectives is the top-level objectives block: the plans' default
// targets and the DR programme's KPI targets, which a plan's own
// objectives block does not take.
type rawTopObjectives struct {
	RTO                      *string  `hcl:"rto,optional"`
	RPO                      *string  `hcl:"rpo,optional"`
	DrillSuccessRate         *float64 `hcl:"drill_success_rate,optional"`
	Availability             *float64 `hcl:"availability,optional"`
	AvailabilityTradingHours *float64 `hcl:"availability_trading_hours,optional"`
	MTTR                     *string  `hcl:"mttr,optional"`
	Window                   *string  `hcl:"window,optional"`
}

type rawPlan struct {
	Kind        string         `hcl:"kind,optional"`
	MaxDataLoss *string        `hcl:"max_data_loss,optional"`
	Objectives  *rawObjectives `hcl:"objectives,block"`
	Steps       []rawStep      `hcl:"step,block"`
}

type rawStep struct {
	Name        string            `hcl:"name,label"`
	Action      string            `hcl:"action"`
	Target      string            `hcl:"target,optional"`
	Site        string            `hcl:"site,optional"`
	Host        string            `hcl:"host,optional"`
	Before      string            `hcl:"before,optional"`
	After       string            `hcl:"after,optional"`
	DependsOn   []string          `hcl:"depends_on,optional"`
	Args        map[string]string `hcl:"args,optional"`
	Timeout     string            `hcl:"timeout,optional"`
	Retries     *int              `hcl:"retries,optional"`
	OnFailure   string            `hcl:"on_failure,optional"`
	Description string            `hcl:"description,optional"`
}

// ParseFile reads the objectives and plan blocks of the file at path (a
// plan file or the server's config file) and checks everything that does
// not need a topology. See Parse.
func ParseFile(path string) (*File, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read plan file: %w", err)
	}
	return Parse(src, path)
}

// Parse reads the top-level objectives block and the plan blocks of src,
// the file filename, ignoring every other top-level attribute and block
// (so a whole server config parses). Every problem comes at once in an
// *Error, each as "file:line:col: message"; problems of structure (syntax,
// unknown keys, wrong types, missing keys) are reported alone, before the
// values are checked. File.Validate checks what needs a topology.
func Parse(src []byte, filename string) (*File, error) {
	exp, lines := hclpos.ExpandSingleLineBlocks(src, filename)
	p := &parser{file: filename, lines: lines, top: map[*hclsyntax.Block]bool{}}
	f, hd := hclsyntax.ParseConfig(exp, filename, hcl.InitialPos)
	if hd.HasErrors() {
		p.addHCL(hclpos.FirstErrors(hd), nil)
		return nil, p.err()
	}
	body := f.Body.(*hclsyntax.Body)
	var objectives, plans []*hclsyntax.Block
	for _, b := range body.Blocks {
		switch b.Type {
		case "objectives":
			objectives = append(objectives, b)
		case "plan":
			plans = append(plans, b)
		case "step":
			p.at(p.rng(b.DefRange()), "step blocks go inside a plan block, e.g. plan \"failover\" { step \"name\" { ... } }")
		default:
			// Other blocks belong to the server's config, but a near miss
			// of ours is a typo that would silently drop a plan.
			if hint := didYouMean(b.Type, []string{"plan", "objectives"}); hint != "" {
				p.at(p.rng(b.TypeRange), "unknown block %q%s", b.Type, hint)
			}
		}
	}
	// Structure first.
	var rawObj rawTopObjectives
	for i, b := range objectives {
		p.top[b] = true
		switch {
		case i > 0:
			p.at(p.rng(b.DefRange()), "duplicate objectives block; only one is allowed")
		case len(b.Labels) > 0:
			p.at(p.rng(b.LabelRanges[0]), "objectives block takes no label; expected objectives { rto = \"15m\"  rpo = \"5m\" }")
		default:
			p.addHCL(gohcl.DecodeBody(b.Body, nil, &rawObj), b)
		}
	}
	raws := make([]rawPlan, len(plans))
	for i, b := range plans {
		if len(b.Labels) != 1 {
			p.at(p.rng(b.DefRange()), "plan block: expected one label, its name, e.g. plan \"failover\" { ... }")
			continue
		}
		p.addHCL(gohcl.DecodeBody(b.Body, nil, &raws[i]), b)
	}
	if len(p.list) > 0 {
		return nil, p.err()
	}
	// Then values.
	out := &File{Programme: Programme{Window: DefaultKPIWindow}}
	if len(objectives) > 0 {
		body := objectives[0].Body
		out.Objectives = p.objectives(body, &rawObjectives{RTO: rawObj.RTO, RPO: rawObj.RPO}, Objectives{})
		out.Programme = p.programme(body, &rawObj)
	}
	seen := map[string]bool{}
	for i, b := range plans {
		def := p.plan(b, &raws[i])
		if seen[def.Name] {
			p.at(p.rng(b.LabelRanges[0]), "plan %q is declared twice", def.Name)
		}
		seen[def.Name] = true
		out.Plans = append(out.Plans, def)
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	return out, nil
}

// parser records problems at their positions in the operator's file.
type parser struct {
	problems
	file  string
	lines *hclpos.LineMap
	// top are the top-level objectives blocks, which take the programme's
	// keys too.
	top map[*hclsyntax.Block]bool
}

// rng translates a range of the rewritten source to the operator's file.
func (p *parser) rng(r hcl.Range) hcl.Range { return p.lines.OriginalRange(r) }

// attr is where attribute name's value is in body, or the body's block
// (def) when it is absent.
func (p *parser) attr(body *hclsyntax.Body, name string, def hcl.Range) hcl.Range {
	if a, ok := body.Attributes[name]; ok {
		return p.rng(a.Expr.Range())
	}
	return def
}

// plan checks one plan block's values.
func (p *parser) plan(b *hclsyntax.Block, raw *rawPlan) *Definition {
	def := &Definition{Name: b.Labels[0], Range: p.rng(b.DefRange())}
	label := p.rng(b.LabelRanges[0])
	if err := names.Check(def.Name); err != nil {
		p.at(label, "plan %q: %v, e.g. \"failover-no-approval\"", def.Name, err)
	}
	kindRng := p.attr(b.Body, "kind", def.Range)
	switch isKind := slices.Contains(Kinds, Kind(def.Name)); {
	case raw.Kind == "" && isKind:
		def.Kind = Kind(def.Name)
	case raw.Kind == "":
		p.at(def.Range, "plan %q: missing kind; expected kind = one of %s (only a plan named after a kind may omit it)", def.Name, quoted(kindNames()))
	case !slices.Contains(Kinds, Kind(raw.Kind)):
		p.at(kindRng, "plan %q: unknown kind %q%s; expected one of %s", def.Name, raw.Kind, didYouMean(raw.Kind, kindNames()), quoted(kindNames()))
	case isKind && raw.Kind != def.Name:
		p.at(kindRng, "plan %q: kind %q contradicts the label, which names the default %s plan; remove kind or rename the plan", def.Name, raw.Kind, def.Name)
	default:
		def.Kind = Kind(raw.Kind)
	}
	if raw.Objectives != nil {
		ob := blockBody(b.Body, "objectives")
		def.RTO = p.optDuration(p.attr(ob, "rto", def.Range), fmt.Sprintf("plan %q: objectives.rto", def.Name), raw.Objectives.RTO)
		def.RPO = p.optDuration(p.attr(ob, "rpo", def.Range), fmt.Sprintf("plan %q: objectives.rpo", def.Name), raw.Objectives.RPO)
	}
	def.MaxDataLoss = p.optDuration(p.attr(b.Body, "max_data_loss", def.Range), fmt.Sprintf("plan %q: max_data_loss", def.Name), raw.MaxDataLoss)
	stepBlocks := blocksOf(b.Body, "step")
	names := map[string]bool{}
	for i := range raw.Steps {
		s := p.step(def, stepBlocks[i], &raw.Steps[i])
		if names[s.Name] {
			p.at(s.Range, "plan %q: step %q is declared twice", def.Name, s.Name)
		}
		names[s.Name] = true
		def.Steps = append(def.Steps, s)
	}
	p.stepDeps(def)
	return def
}

// objectives reads an objectives block over defaults.
func (p *parser) objectives(body *hclsyntax.Body, raw *rawObjectives, o Objectives) Objectives {
	if d := p.optDuration(p.attr(body, "rto", p.rng(body.SrcRange)), "objectives.rto", raw.RTO); d != nil {
		o.RTO = *d
	}
	if d := p.optDuration(p.attr(body, "rpo", p.rng(body.SrcRange)), "objectives.rpo", raw.RPO); d != nil {
		o.RPO, o.ZeroRPO = *d, *d == 0
	}
	return o
}

// programme reads the DR programme's KPI targets from the top-level
// objectives block.
func (p *parser) programme(body *hclsyntax.Body, raw *rawTopObjectives) Programme {
	pr := Programme{Window: DefaultKPIWindow}
	ratio := func(key string, v *float64) float64 {
		switch {
		case v == nil:
			return 0
		case *v > 1 && *v <= 100:
			p.at(p.attr(body, key, p.rng(body.SrcRange)), "objectives.%s = %g is not a ratio; write %g for %g %%", key, *v, *v/100, *v)
		case *v <= 0 || *v > 1:
			p.at(p.attr(body, key, p.rng(body.SrcRange)), "objectives.%s = %g: expected a ratio above 0 and at most 1, e.g. 0.995 for 99.5 %%", key, *v)
		default:
			return *v
		}
		return 0
	}
	pr.DrillSuccessRate = ratio("drill_success_rate", raw.DrillSuccessRate)
	pr.Availability = ratio("availability", raw.Availability)
	pr.AvailabilityTradingHours = ratio("availability_trading_hours", raw.AvailabilityTradingHours)
	long := func(key string, v *string) (time.Duration, bool) {
		if v == nil {
			return 0, false
		}
		rng := p.attr(body, key, p.rng(body.SrcRange))
		d, err := calendar.ParseDuration(*v)
		if err != nil || d <= 0 {
			p.at(rng, "objectives.%s: invalid duration %q: expected a positive number with a unit, e.g. \"15m\", \"4h\", \"365d\"", key, *v)
			return 0, false
		}
		return d, true
	}
	if d, ok := long("mttr", raw.MTTR); ok {
		pr.MTTR = d
	}
	if d, ok := long("window", raw.Window); ok {
		pr.Window = d
	}
	return pr
}

// optDuration parses a duration that may be absent (nil) and must not be
// negative.
func (p *parser) optDuration(rng hcl.Range, key string, raw *string) *time.Duration {
	if raw == nil {
		return nil
	}
	d, ok := p.duration(rng, key, *raw)
	if !ok {
		return nil
	}
	if d < 0 {
		p.at(rng, "%s: duration %q is negative; expected zero or more", key, *raw)
		return nil
	}
	return &d
}

// duration parses raw, recording a bad one at rng.
func (p *parser) duration(rng hcl.Range, key, raw string) (time.Duration, bool) {
	d, err := time.ParseDuration(raw)
	if err != nil {
		p.at(rng, "%s: invalid duration %q: expected a number with a unit, e.g. \"30s\", \"5m\", \"1h\"", key, raw)
		return 0, false
	}
	return d, true
}

// step checks one step block's values.
func (p *parser) step(def *Definition, b *hclsyntax.Block, raw *rawStep) StepDef {
	s := StepDef{
		Name: raw.Name, Action: raw.Action, Target: raw.Target, Site: raw.Site, Host: raw.Host,
		Before: raw.Before, After: raw.After, DependsOn: raw.DependsOn, Args: raw.Args,
		OnFailure: raw.OnFailure, Description: raw.Description,
		Range: p.rng(b.DefRange()), Ranges: map[string]hcl.Range{},
	}
	for name, a := range b.Body.Attributes {
		s.Ranges[name] = p.rng(a.Expr.Range())
	}
	what := fmt.Sprintf("plan %q: step %q", def.Name, s.Name)
	if err := names.Check(s.Name); err != nil {
		p.at(p.rng(b.LabelRanges[0]), "%s: %v, e.g. \"trip-breaker\"", what, err)
	} else if slices.Contains(AgentActions, s.Name) || slices.Contains(ControlActions, s.Name) {
		p.at(p.rng(b.LabelRanges[0]), "%s: the name is an action's, which default steps use; choose another, e.g. %q", what, s.Name+"-1")
	}
	actionOK := p.stepAction(what, &s)
	if actionOK {
		p.stepPlacement(what, &s)
		p.stepArgs(what, &s)
	}
	p.stepPhase(what, def.Kind, &s)
	p.stepRun(what, &s, raw)
	return s
}

// stepAction checks the action and the target it needs.
func (p *parser) stepAction(what string, s *StepDef) bool {
	switch {
	case slices.Contains(extensionActions, s.Action):
	case slices.Contains(AgentActions, s.Action) || slices.Contains(ControlActions, s.Action):
		p.at(s.rangeOf("action"), "%s: action %q is reserved to the default plans; expected one of %s", what, s.Action, quoted(extensionActions))
		return false
	default:
		p.at(s.rangeOf("action"), "%s: unknown action %q%s; expected one of %s", what, s.Action, didYouMean(s.Action, extensionActions), quoted(extensionActions))
		return false
	}
	switch {
	case isControl(s.Action) && s.Target != "":
		p.at(s.rangeOf("target"), "%s: %s runs in the leader and takes no target", what, s.Action)
	case !isControl(s.Action) && s.Action != ActionFence && s.Target == "":
		p.at(s.Range, "%s: %s needs target = the %s on the host", what, s.Action, targetKind(s.Action))
	}
	return true
}

// stepPlacement checks site and host.
func (p *parser) stepPlacement(what string, s *StepDef) {
	if isControl(s.Action) {
		for _, key := range []string{"site", "host"} {
			if _, ok := s.Ranges[key]; ok {
				p.at(s.rangeOf(key), "%s: %s runs in the leader and takes neither site nor host", what, s.Action)
			}
		}
		return
	}
	switch {
	case s.Site != "" && s.Host != "":
		p.at(s.rangeOf("host"), "%s: both site and host are set; expected one: site = \"active\" or \"target\" (every host there declaring the target), or host = one host id", what)
	case s.Site == "" && s.Host == "":
		p.at(s.Range, "%s: %s runs on agents; expected site = \"active\" or \"target\", or host = a host id", what, s.Action)
	case s.Host == "" && s.Site != SiteActive && s.Site != SiteTarget:
		p.at(s.rangeOf("site"), "%s: site %q is not \"active\" or \"target\"; name one host with host = \"...\"", what, s.Site)
	}
}

// stepArgs checks the arguments control actions need.
func (p *parser) stepArgs(what string, s *StepDef) {
	switch s.Action {
	case ActionWait:
		raw, ok := s.Args["duration"]
		if !ok {
			p.at(s.rangeOf("args"), "%s: wait needs args = { duration = \"5m\" }", what)
			return
		}
		if d, ok := p.duration(s.rangeOf("args"), what+": args.duration", raw); ok && d <= 0 {
			p.at(s.rangeOf("args"), "%s: args.duration %q must be positive", what, raw)
		}
	case ActionNotify:
		if strings.TrimSpace(s.Args["message"]) == "" {
			p.at(s.rangeOf("args"), "%s: notify needs args = { message = \"...\" }", what)
		}
	}
}

// stepPhase checks before and after against the plan's kind.
func (p *parser) stepPhase(what string, kind Kind, s *StepDef) {
	switch {
	case s.Before != "" && s.After != "":
		p.at(s.rangeOf("after"), "%s: both before and after are set; expected one of them", what)
		return
	case s.Before == "" && s.After == "":
		p.at(s.Range, "%s: expected before = \"<phase>\" or after = \"<phase>\" to place the step", what)
		return
	}
	key, phase := "before", s.Before
	if phase == "" {
		key, phase = "after", s.After
	}
	if kind == "" {
		return // the kind is reported already
	}
	if names := phaseNames(kind); !slices.Contains(names, phase) {
		p.at(s.rangeOf(key), "%s: unknown phase %q for a %s plan%s; expected one of %s", what, phase, kind, didYouMean(phase, names), quoted(names))
	}
}

// stepRun checks timeout, retries and on_failure, filling defaults.
func (p *parser) stepRun(what string, s *StepDef, raw *rawStep) {
	if raw.Timeout != "" {
		if d, ok := p.duration(s.rangeOf("timeout"), what+": timeout", raw.Timeout); ok {
			if d <= 0 {
				p.at(s.rangeOf("timeout"), "%s: timeout %q must be positive", what, raw.Timeout)
			}
			s.Timeout = d
		}
	}
	s.Retries = defaultRetries(s.Action)
	if raw.Retries != nil {
		s.Retries = *raw.Retries
		if s.Retries < 0 {
			p.at(s.rangeOf("retries"), "%s: retries %d is negative; expected 0 or more", what, s.Retries)
		}
	}
	if s.OnFailure != "" && s.OnFailure != OnFailureAbort && s.OnFailure != OnFailureContinue {
		p.at(s.rangeOf("on_failure"), "%s: on_failure %q is not \"abort\" or \"continue\"", what, s.OnFailure)
	}
}

// stepDeps checks that depends_on names steps of the plan, without a
// cycle.
func (p *parser) stepDeps(def *Definition) {
	byName := map[string]*StepDef{}
	var names []string
	for i := range def.Steps {
		byName[def.Steps[i].Name] = &def.Steps[i]
		names = append(names, def.Steps[i].Name)
	}
	for _, s := range def.Steps {
		for _, dep := range s.DependsOn {
			if byName[dep] == nil {
				p.at(s.rangeOf("depends_on"), "plan %q: step %q depends on %q, which is not a step of this plan%s; expected one of %s",
					def.Name, s.Name, dep, didYouMean(dep, names), quoted(names))
			}
		}
	}
	cycle := findCycle(names, func(n string) []string { return byName[n].DependsOn })
	if cycle != nil {
		p.at(byName[cycle[0]].rangeOf("depends_on"), "plan %q: steps depend on each other in a cycle: %s", def.Name, strings.Join(cycle, " -> "))
	}
}

// targetKind names what an agent action's target is.
func targetKind(action string) string {
	switch action {
	case ActionRsync:
		return "sync block"
	case ActionSnapshot, ActionRestoreSnapshot:
		return "snapshot block"
	case ActionHook:
		return "hook"
	case ActionBackup, ActionRestoreBackup, ActionVerifyBackup:
		return "backup block"
	}
	return "service"
}

func kindNames() []string {
	out := make([]string, len(Kinds))
	for i, k := range Kinds {
		out[i] = string(k)
	}
	return out
}

// blockBody returns the body of the first block of type typ, or nil.
func blockBody(body *hclsyntax.Body, typ string) *hclsyntax.Body {
	if bs := blocksOf(body, typ); len(bs) > 0 {
		return bs[0].Body
	}
	return nil
}

// blocksOf returns the blocks of type typ in file order, which is also
// the order gohcl decodes them in.
func blocksOf(body *hclsyntax.Body, typ string) []*hclsyntax.Block {
	var out []*hclsyntax.Block
	for _, b := range body.Blocks {
		if b.Type == typ {
			out = append(out, b)
		}
	}
	return out
}

var (
	unknownArgRe   = regexp.MustCompile(`^An argument named "([^"]*)" is not expected here\.\s*(.*)$`)
	unknownBlockRe = regexp.MustCompile(`^Blocks of type "([^"]*)" are not expected here\.\s*(.*)$`)
	missingArgRe   = regexp.MustCompile(`^The argument "([^"]*)" is required`)
	duplicateRe    = regexp.MustCompile(`^Duplicate (\S+) block$`)
	redefinedRe    = regexp.MustCompile(`^The argument "([^"]*)" was already set`)
	missingLabelRe = regexp.MustCompile(`^Missing (\S+) for (\S+)$`)
	didYouMeanRe   = regexp.MustCompile(`^Did you mean "([^"]*)"\?$`)
)

// addHCL records HCL's own diagnostics in drplane's words. blk is the
// block whose body was decoded, nil for the file.
func (p *parser) addHCL(hd hcl.Diagnostics, blk *hclsyntax.Block) {
	for _, h := range hd {
		if h.Severity != hcl.DiagError {
			continue
		}
		rng := hcl.Range{Filename: p.file, Start: hcl.InitialPos, End: hcl.InitialPos}
		if h.Subject != nil {
			rng = *h.Subject
		}
		rng, msg := p.rephrase(h, rng, innermost(blk, rng.Start))
		p.at(p.rng(rng), "%s", msg)
	}
}

// innermost is the deepest block, blk or one nested in it, whose body
// holds pos.
func innermost(blk *hclsyntax.Block, pos hcl.Pos) *hclsyntax.Block {
	if blk == nil {
		return nil
	}
	for _, b := range blk.Body.Blocks {
		if b.Body.SrcRange.ContainsPos(pos) {
			return innermost(b, pos)
		}
	}
	return blk
}

// rephrase turns one HCL diagnostic into a position and a message that
// says what is expected.
func (p *parser) rephrase(h *hcl.Diagnostic, rng hcl.Range, blk *hclsyntax.Block) (hcl.Range, string) {
	where := "the file"
	if blk != nil {
		where = "a " + blk.Type + " block"
	}
	switch {
	case h.Summary == "Unsupported argument" && unknownArgRe.MatchString(h.Detail):
		m := unknownArgRe.FindStringSubmatch(h.Detail)
		return rng, fmt.Sprintf("unknown key %q%s", m[1], p.expected(m[2], where, blk, false))
	case h.Summary == "Unsupported block type" && unknownBlockRe.MatchString(h.Detail):
		m := unknownBlockRe.FindStringSubmatch(h.Detail)
		return rng, fmt.Sprintf("unknown block %q%s", m[1], p.expected(m[2], where, blk, true))
	case h.Summary == "Missing required argument" && missingArgRe.MatchString(h.Detail) && blk != nil:
		return blk.DefRange(), fmt.Sprintf("%s: missing required key %q", blockName(blk), missingArgRe.FindStringSubmatch(h.Detail)[1])
	case h.Summary == "Unsuitable value type" && blk != nil:
		why := strings.TrimPrefix(h.Detail, "Unsuitable value: ")
		for name, a := range blk.Body.Attributes {
			if a.Expr.StartRange().Start.Byte == rng.Start.Byte {
				return a.Expr.Range(), fmt.Sprintf("%s: wrong type: %s", name, why)
			}
		}
		return rng, "wrong type: " + why
	case duplicateRe.MatchString(h.Summary):
		return rng, fmt.Sprintf("duplicate %s block; only one is allowed", duplicateRe.FindStringSubmatch(h.Summary)[1])
	case h.Summary == "Attribute redefined" && redefinedRe.MatchString(h.Detail):
		return rng, fmt.Sprintf("key %q is set twice; each key may be set only once", redefinedRe.FindStringSubmatch(h.Detail)[1])
	case missingLabelRe.MatchString(h.Summary):
		m := missingLabelRe.FindStringSubmatch(h.Summary)
		return rng, fmt.Sprintf("%s block: missing its %s label, e.g. %s \"name\" { ... }", m[2], m[1], m[2])
	}
	msg := lowerFirst(h.Summary)
	if h.Detail != "" {
		msg += ": " + lowerFirst(strings.TrimSuffix(h.Detail, "."))
	}
	return rng, msg
}

// expected is "; did you mean ...?" from HCL's detail, or else the keys
// (or blocks) that blk takes.
func (p *parser) expected(detail, where string, blk *hclsyntax.Block, blocks bool) string {
	if m := didYouMeanRe.FindStringSubmatch(strings.TrimSpace(detail)); m != nil {
		return fmt.Sprintf("; did you mean %q?", m[1])
	}
	var schema *hcl.BodySchema
	if blk != nil {
		switch blk.Type {
		case "objectives":
			schema, _ = gohcl.ImpliedBodySchema(rawObjectives{})
			if p.top[blk] {
				schema, _ = gohcl.ImpliedBodySchema(rawTopObjectives{})
			}
		case "plan":
			schema, _ = gohcl.ImpliedBodySchema(rawPlan{})
		case "step":
			schema, _ = gohcl.ImpliedBodySchema(rawStep{})
		}
	}
	if schema == nil {
		return ""
	}
	var names []string
	if blocks {
		for _, b := range schema.Blocks {
			names = append(names, b.Type)
		}
	} else {
		for _, a := range schema.Attributes {
			names = append(names, a.Name)
		}
	}
	slices.Sort(names)
	if len(names) == 0 {
		return fmt.Sprintf("; %s takes none", where)
	}
	return fmt.Sprintf("; %s takes %s", where, strings.Join(names, ", "))
}

// blockName is `step "x"` or `objectives`, for messages.
func blockName(b *hclsyntax.Block) string {
	if len(b.Labels) > 0 {
		return fmt.Sprintf("%s %q", b.Type, b.Labels[0])
	}
	return b.Type
}

func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}
