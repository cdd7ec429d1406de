package opcua

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/ua"
)

// BrowseOptions says where and how deep to browse.
type BrowseOptions struct {
	// Server is the connection: endpoint, security, auth, PKI folder and
	// trusted thumbprints as in an adapter's config (devices unused).
	Server Config
	// Node is where to start. Default the Objects folder (i=85).
	Node string
	// Depth is how many levels below Node to list. Default 1.
	Depth int
}

// Node is one node found by Browse.
type Node struct {
	NodeID     string
	BrowseName string // "1:Temperature"
	Name       string // the browse name without its namespace
	Class      string // Object, Variable or Method
	Depth      int    // 1 for Node's children
	Parent     string // the NodeId of the node it was found under
	// Variables: the config type ("double"), or the server's DataType
	// NodeId when no point type matches; Length is the array length
	// (0 for a scalar, -1 for an array whose length is unknown); Access is
	// "r", "rw", "w" or "".
	Type   string
	Length int
	Access string
	// Methods: input and output arguments as name and type (an array
	// argument's type ends in "[]"); ArgsError says why they could not be
	// read (the listing goes on without them).
	Inputs, Outputs []Argument
	ArgsError       string
}

// Argument is a method argument.
type Argument struct{ Name, Type string }

// Browse connects as an adapter with opts.Server would (the server's
// certificate must be trusted when security or credentials need it) and
// lists the objects, variables and methods below opts.Node, depth first.
func Browse(ctx context.Context, opts BrowseOptions) ([]Node, error) {
	cfg := opts.Server
	cfg.Devices = nil
	cfg.SetDefaults()
	if opts.Node == "" {
		opts.Node = "i=85"
	}
	if opts.Depth <= 0 {
		opts.Depth = 1
	}
	start, err := ParseNodeID(opts.Node)
	if err != nil {
		return nil, err
	}
	if err := checkEndpoint(cfg.Endpoint); err != nil {
		return nil, fmt.Errorf("endpoint: %w", err)
	}
	uri := cfg.ApplicationURI
	if uri == "" {
		uri = "urn:edgegw:browse"
	}
	app, err := loadOrCreateAppCert(cfg.PKIDir, uri, "localhost")
	if err != nil {
		return nil, err
	}
	a := &Adapter{name: "browse", cfg: cfg, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		trust: newTrustList(cfg.PKIDir, cfg.Trusted)}
	s := &session{a: a, app: app}
	if err := s.loadUser(); err != nil {
		return nil, err
	}
	c, err := s.connect(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close(context.WithoutCancel(ctx))
	// A browse of a node the server does not have answers no references,
	// not an error: ask for the node itself first.
	if _, err := c.Node(start).NodeClass(ctx); err != nil {
		return nil, fmt.Errorf("node %s: %w", formatNodeID(start), err)
	}
	b := &browser{c: c}
	var out []Node
	if err := b.walk(ctx, start, 1, opts.Depth, &out); err != nil {
		return out, err
	}
	return out, nil
}

type browser struct{ c *opcua.Client }

func (b *browser) walk(ctx context.Context, parent *ua.NodeID, depth, maxDepth int, out *[]Node) error {
	refs, err := b.c.Node(parent).References(ctx, id.HierarchicalReferences, ua.BrowseDirectionForward,
		ua.NodeClassObject|ua.NodeClassVariable|ua.NodeClassMethod, true)
	if err != nil {
		return fmt.Errorf("browse %s: %w", formatNodeID(parent), err)
	}
	var vars []int
	start := len(*out)
	for _, r := range refs {
		if r.NodeID == nil || r.NodeID.NodeID == nil || r.NodeID.HasServerIndex() {
			continue
		}
		n := Node{NodeID: formatNodeID(r.NodeID.NodeID), Class: strings.TrimPrefix(r.NodeClass.String(), "NodeClass"),
			Depth: depth, Parent: formatNodeID(parent)}
		if r.BrowseName != nil {
			n.Name = r.BrowseName.Name
			n.BrowseName = fmt.Sprintf("%d:%s", r.BrowseName.NamespaceIndex, r.BrowseName.Name)
		}
		*out = append(*out, n)
		if r.NodeClass == ua.NodeClassVariable {
			vars = append(vars, len(*out)-1)
		}
	}
	if err := b.describeVariables(ctx, *out, vars); err != nil {
		return err
	}
	end := len(*out)
	for i := start; i < end; i++ {
		n := (*out)[i]
		node, _ := ParseNodeID(n.NodeID)
		if node == nil {
			continue
		}
		if n.Class == "Method" {
			in, outs, err := b.arguments(ctx, node)
			if err != nil {
				if ctx.Err() != nil {
					return err
				}
				// A server may hide a method's arguments from this user:
				// the method is listed without them.
				(*out)[i].ArgsError = err.Error()
				continue
			}
			(*out)[i].Inputs, (*out)[i].Outputs = in, outs
			continue
		}
		if n.Class == "Object" && depth < maxDepth {
			if err := b.walk(ctx, node, depth+1, maxDepth, out); err != nil {
				return err
			}
		}
	}
	return nil
}

// describeVariables reads the data type, rank, access level and value of
// the variables at out[idx].
func (b *browser) describeVariables(ctx context.Context, out []Node, idx []int) error {
	if len(idx) == 0 {
		return nil
	}
	attrs := []ua.AttributeID{ua.AttributeIDDataType, ua.AttributeIDValueRank, ua.AttributeIDUserAccessLevel, ua.AttributeIDValue}
	req := &ua.ReadRequest{}
	for _, i := range idx {
		node, _ := ParseNodeID(out[i].NodeID)
		for _, at := range attrs {
			req.NodesToRead = append(req.NodesToRead, &ua.ReadValueID{NodeID: node, AttributeID: at})
		}
	}
	res, err := b.c.Read(ctx, req)
	if err != nil {
		return fmt.Errorf("read variable attributes: %w", err)
	}
	if len(res.Results) != len(req.NodesToRead) {
		return errors.New("read variable attributes: short answer")
	}
	for k, i := range idx {
		r := res.Results[k*len(attrs) : (k+1)*len(attrs)]
		n := &out[i]
		if dv := r[0]; dv != nil && dv.Value != nil {
			if dt := dv.Value.NodeID(); dt != nil {
				n.Type = dataTypeName(dt)
			}
		}
		if dv := r[1]; dv != nil && dv.Value != nil && dv.Value.Int() >= 1 {
			n.Length = -1
			if v := r[3]; v != nil && v.Value != nil && v.Value.Has(ua.VariantArrayValues) {
				n.Length = int(v.Value.ArrayLength())
			}
		}
		if dv := r[2]; dv != nil && dv.Value != nil {
			lvl := ua.AccessLevelType(dv.Value.Uint())
			if lvl&ua.AccessLevelTypeCurrentRead != 0 {
				n.Access += "r"
			}
			if lvl&ua.AccessLevelTypeCurrentWrite != 0 {
				n.Access += "w"
			}
		}
	}
	return nil
}

// dataTypeName is the point type of a DataType NodeId (its built-in type
// ids are the namespace-0 numeric ids 1-13), or the NodeId itself.
func dataTypeName(dt *ua.NodeID) string {
	if dt.Namespace() == 0 && dt.Type() != ua.NodeIDTypeString && dt.IntID() <= 13 {
		if n, ok := typeNames[ua.TypeID(dt.IntID())]; ok {
			return n
		}
	}
	return formatNodeID(dt)
}

// arguments reads a method's InputArguments and OutputArguments.
func (b *browser) arguments(ctx context.Context, m *ua.NodeID) (in, out []Argument, err error) {
	refs, err := b.c.Node(m).References(ctx, id.HasProperty, ua.BrowseDirectionForward, ua.NodeClassVariable, true)
	if err != nil {
		return nil, nil, fmt.Errorf("browse %s: %w", formatNodeID(m), err)
	}
	for _, r := range refs {
		if r.BrowseName == nil || r.NodeID == nil || r.NodeID.NodeID == nil {
			continue
		}
		var dst *[]Argument
		switch r.BrowseName.Name {
		case "InputArguments":
			dst = &in
		case "OutputArguments":
			dst = &out
		default:
			continue
		}
		v, err := b.c.Node(r.NodeID.NodeID).Value(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("read %s: %w", r.BrowseName.Name, err)
		}
		eos, _ := v.Value().([]*ua.ExtensionObject)
		for _, eo := range eos {
			if arg, ok := eo.Value.(*ua.Argument); ok {
				t := "?"
				if arg.DataType != nil {
					t = dataTypeName(arg.DataType)
				}
				if arg.ValueRank >= 0 { // one or more dimensions
					t += "[]"
				}
				*dst = append(*dst, Argument{Name: arg.Name, Type: t})
			}
		}
	}
	return in, out, nil
}

// Snippet writes the points and methods of a config device for the
// variables and methods in nodes whose types a point can have.
func Snippet(w io.Writer, device string, nodes []Node) {
	fmt.Fprintf(w, "devices:\n  - name: %s\n", device)
	used := map[string]int{}
	name := func(s string) string {
		s = strings.Map(func(r rune) rune {
			if r == '[' || r == ']' || r == '"' || r == '\\' || r < 0x20 {
				return '_'
			}
			return r
		}, s)
		if s == "" {
			s = "point"
		}
		used[s]++
		if used[s] > 1 {
			s = fmt.Sprintf("%s_%d", s, used[s])
		}
		return s
	}
	var pts, skipped []string
	for _, n := range nodes {
		if n.Class != "Variable" {
			continue
		}
		if _, ok := types[n.Type]; !ok || n.Length < 0 || n.Access == "" || n.Access == "w" {
			skipped = append(skipped, fmt.Sprintf("%s (%s, type %s)", n.NodeID, n.BrowseName, n.Type))
			continue
		}
		p := fmt.Sprintf("      - {name: %q, node: %q, type: %s", name(n.Name), n.NodeID, n.Type)
		if n.Length > 0 {
			p += fmt.Sprintf(", length: %d", n.Length)
		}
		if strings.Contains(n.Access, "w") && n.Length == 0 {
			p += ", writable: true"
		}
		pts = append(pts, p+"}")
	}
	if len(pts) > 0 {
		fmt.Fprintln(w, "    points:")
		for _, p := range pts {
			fmt.Fprintln(w, p)
		}
	}
	var ms []string
	for _, n := range nodes {
		if n.Class != "Method" {
			continue
		}
		if n.ArgsError != "" {
			skipped = append(skipped, fmt.Sprintf("%s (method %s: arguments unreadable)", n.NodeID, n.BrowseName))
			continue
		}
		ok := true
		var ins, outs []string
		for _, a := range n.Inputs {
			if _, known := types[a.Type]; !known {
				ok = false
			}
			ins = append(ins, a.Type)
		}
		for _, a := range n.Outputs {
			outs = append(outs, fmt.Sprintf("%q", a.Name))
		}
		if !ok {
			skipped = append(skipped, fmt.Sprintf("%s (method %s: an input type no point has)", n.NodeID, n.BrowseName))
			continue
		}
		ms = append(ms, fmt.Sprintf("      - {name: %q, object: %q, method: %q, inputs: [%s], outputs: [%s]}",
			name(n.Name), n.Parent, n.NodeID, strings.Join(ins, ", "), strings.Join(outs, ", ")))
	}
	if len(ms) > 0 {
		fmt.Fprintln(w, "    methods:")
		for _, m := range ms {
			fmt.Fprintln(w, m)
		}
	}
	for _, s := range skipped {
		fmt.Fprintf(w, "# left out: %s\n", s)
	}
}
