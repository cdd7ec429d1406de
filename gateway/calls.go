package gateway

import (
	"fmt"
	"slices"
	"strings"

	"github.com/edgegw/edgegw"
)

// checkCalls refuses call actions of mapping methods that name an adapter
// that cannot call procedures, or a method its device does not configure,
// or the wrong number of arguments (mapping's own check finds unknown
// adapters and devices).
func checkCalls(c *Config) []error {
	var errs []error
	for i, m := range c.Mapping.Methods {
		for j, a := range m.Actions {
			if a.Kind != "call" || a.Method == "" {
				continue
			}
			path := fmt.Sprintf("mapping.methods[%d].actions[%d]", i, j)
			k := slices.IndexFunc(c.Southbound, func(s SouthboundConfig) bool { return s.Name == a.Adapter })
			if k < 0 {
				continue
			}
			o := c.Southbound[k].OPCUA
			if o == nil {
				errs = append(errs, edgegw.Errorf(path+".adapter", "%q cannot call methods (only opcua adapters can)", a.Adapter))
				continue
			}
			for _, d := range o.Devices {
				if d.Name != a.Device {
					continue
				}
				var names []string
				for _, mc := range d.Methods {
					names = append(names, mc.Name)
				}
				n := slices.Index(names, a.Method)
				switch {
				case n < 0:
					have := strings.Join(names, ", ")
					if have == "" {
						have = "none"
					}
					errs = append(errs, edgegw.Errorf(path+".method", "unknown method %q of %s/%s (methods: %s)", a.Method, a.Adapter, a.Device, have))
				case len(d.Methods[n].Inputs) != len(a.Args):
					errs = append(errs, edgegw.Errorf(path+".args", "%d arguments for method %q, which takes %d inputs", len(a.Args), a.Method, len(d.Methods[n].Inputs)))
				}
			}
		}
	}
	return errs
}
