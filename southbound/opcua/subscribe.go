package opcua

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/ua"
)

// monitorBatch is the most monitored items created in one request.
const monitorBatch = 1000

// deadbandTypes are the DataChangeFilter deadband types (Part 4, 7.17.2).
var deadbandTypes = map[string]uint32{"absolute": 1, "percent": 2}

// subscribe creates d's subscription and its monitored items. Items the
// server refuses are counted by status and logged once per session; an
// item whose deadband filter the server does not support is created again
// without it (the mapping's deadband still applies).
func (s *session) subscribe(ctx context.Context, c *opcua.Client, d *device, notes chan *opcua.PublishNotificationData) (*opcua.Subscription, error) {
	a := s.a
	tctx, cancel := context.WithTimeout(ctx, a.cfg.Timeout)
	sub, err := c.Subscribe(tctx, &opcua.SubscriptionParameters{Interval: d.cfg.Interval}, notes)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("create subscription: %w", err)
	}
	refused := map[string]uint64{}
	var retry []*item
	for start := 0; start < len(d.items); start += monitorBatch {
		items := d.items[start:min(start+monitorBatch, len(d.items))]
		reqs := make([]*ua.MonitoredItemCreateRequest, len(items))
		for i, it := range items {
			reqs[i] = monitorRequest(it, true)
		}
		res, err := s.monitor(ctx, sub, reqs)
		if err != nil {
			return nil, err
		}
		for i, r := range res {
			switch {
			case r.StatusCode == ua.StatusOK:
			case filterRefused(r.StatusCode) && reqs[i].RequestedParameters.Filter != nil:
				retry = append(retry, items[i])
			default:
				refused[statusName(r.StatusCode)]++
				a.log.Warn("opcua monitored item refused", "device", d.name, "point", items[i].name,
					"node", items[i].nodeText, "status", statusName(r.StatusCode))
			}
		}
	}
	if len(retry) > 0 {
		reqs := make([]*ua.MonitoredItemCreateRequest, len(retry))
		for i, it := range retry {
			reqs[i] = monitorRequest(it, false)
			a.log.Warn("opcua server refused the deadband filter; monitoring without it", "device", d.name, "point", it.name)
		}
		res, err := s.monitor(ctx, sub, reqs)
		if err != nil {
			return nil, err
		}
		for i, r := range res {
			if r.StatusCode != ua.StatusOK {
				refused[statusName(r.StatusCode)]++
				a.log.Warn("opcua monitored item refused", "device", d.name, "point", retry[i].name,
					"node", retry[i].nodeText, "status", statusName(r.StatusCode))
			}
		}
	}
	if len(refused) > 0 {
		a.st.device(d.idx, func(ds *DeviceStats) {
			for k, n := range refused {
				addCount(&ds.Refused, k, n)
			}
		})
	}
	return sub, nil
}

func (s *session) monitor(ctx context.Context, sub *opcua.Subscription, reqs []*ua.MonitoredItemCreateRequest) ([]*ua.MonitoredItemCreateResult, error) {
	tctx, cancel := context.WithTimeout(ctx, s.a.cfg.Timeout)
	defer cancel()
	res, err := sub.Monitor(tctx, ua.TimestampsToReturnBoth, reqs...)
	if err != nil {
		return nil, fmt.Errorf("create monitored items: %w", err)
	}
	if res.ResponseHeader != nil && isBad(res.ResponseHeader.ServiceResult) {
		return nil, fmt.Errorf("create monitored items: %w", res.ResponseHeader.ServiceResult)
	}
	if len(res.Results) != len(reqs) {
		return nil, fmt.Errorf("create monitored items: %d results for %d items", len(res.Results), len(reqs))
	}
	return res.Results, nil
}

func filterRefused(c ua.StatusCode) bool {
	return c == ua.StatusBadFilterNotAllowed || c == ua.StatusBadMonitoredItemFilterUnsupported ||
		c == ua.StatusBadDeadbandFilterInvalid || c == ua.StatusBadMonitoredItemFilterInvalid
}

// monitorRequest is the monitored item of one point, with its deadband
// filter when it has one and filter is true.
func monitorRequest(it *item, filter bool) *ua.MonitoredItemCreateRequest {
	r := opcua.NewMonitoredItemCreateRequestWithDefaults(it.node, ua.AttributeIDValue, it.handle)
	p := r.RequestedParameters
	p.SamplingInterval = float64(it.cfg.SamplingInterval) / float64(time.Millisecond)
	p.QueueSize = it.cfg.QueueSize
	p.DiscardOldest = true
	if filter && it.cfg.Deadband > 0 {
		p.Filter = ua.NewExtensionObject(&ua.DataChangeFilter{
			Trigger:       ua.DataChangeTriggerStatusValue,
			DeadbandType:  deadbandTypes[it.cfg.DeadbandType],
			DeadbandValue: it.cfg.Deadband,
		})
	}
	return r
}

// notification files the values of one publish response of d's
// subscription.
func (s *session) notification(ctx context.Context, d *device, v any) bool {
	dc, ok := v.(*ua.DataChangeNotification)
	if !ok {
		return true // status changes and events carry no values
	}
	now := time.Now()
	b := batch{dev: d}
	for _, mi := range dc.MonitoredItems {
		if mi == nil || int(mi.ClientHandle) >= len(s.a.items) {
			continue
		}
		it := s.a.items[mi.ClientHandle]
		if it.dev != d {
			continue
		}
		b.add(it, mi.Value, now)
	}
	return s.flush(ctx, &b)
}

// poll reads d's points once.
func (s *session) poll(ctx context.Context, c *opcua.Client, d *device) error {
	now := time.Now()
	b := batch{dev: d, polled: true}
	b.st.Polls = 1
	for start := 0; start < len(d.items); start += monitorBatch {
		items := d.items[start:min(start+monitorBatch, len(d.items))]
		req := &ua.ReadRequest{TimestampsToReturn: ua.TimestampsToReturnBoth}
		for _, it := range items {
			req.NodesToRead = append(req.NodesToRead, &ua.ReadValueID{NodeID: it.node, AttributeID: ua.AttributeIDValue})
		}
		tctx, cancel := context.WithTimeout(ctx, s.a.cfg.Timeout)
		res, err := c.Read(tctx, req)
		cancel()
		if err != nil {
			return fmt.Errorf("device %s: read: %w", d.name, err)
		}
		if len(res.Results) != len(items) {
			return fmt.Errorf("device %s: read: %d results for %d nodes", d.name, len(res.Results), len(items))
		}
		for i, dv := range res.Results {
			b.add(items[i], dv, now) // every poll passes its values up, as Modbus polls do
		}
	}
	if !s.flush(ctx, &b) {
		return ctx.Err()
	}
	return nil
}

func readFile(path string) ([]byte, error) { return os.ReadFile(path) }
