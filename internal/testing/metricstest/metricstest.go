// Package metricstest scrapes a Prometheus endpoint over HTTP and reads
// it with Prometheus's own text parser, for tests that compare metrics
// with what else the system says.
package metricstest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Families are the scraped metric families by name.
type Families map[string]*dto.MetricFamily

// Scrape GETs url with client and parses the answer.
func Scrape(ctx context.Context, client *http.Client, url string) (Families, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: %s: %s", url, resp.Status, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		return nil, fmt.Errorf("scrape %s: parse: %w", url, err)
	}
	return families, nil
}

// Value is the value of the one series of name whose labels include
// labels (a counter's, a gauge's or an untyped one's; a histogram's
// count); ok is false when there is none, and an error names the
// duplicates when there are several.
func (f Families) Value(name string, labels map[string]string) (v float64, ok bool, err error) {
	fam := f[name]
	if fam == nil {
		return 0, false, nil
	}
	n := 0
	for _, m := range fam.GetMetric() {
		if !matches(m, labels) {
			continue
		}
		n++
		switch {
		case m.GetGauge() != nil:
			v = m.GetGauge().GetValue()
		case m.GetCounter() != nil:
			v = m.GetCounter().GetValue()
		case m.GetUntyped() != nil:
			v = m.GetUntyped().GetValue()
		case m.GetHistogram() != nil:
			v = float64(m.GetHistogram().GetSampleCount())
		}
	}
	if n > 1 {
		return 0, false, fmt.Errorf("%s%v: %d series match", name, labels, n)
	}
	return v, n == 1, nil
}

// Series counts the series of name.
func (f Families) Series(name string) int {
	if fam := f[name]; fam != nil {
		return len(fam.GetMetric())
	}
	return 0
}

func matches(m *dto.Metric, want map[string]string) bool {
	have := map[string]string{}
	for _, l := range m.GetLabel() {
		have[l.GetName()] = l.GetValue()
	}
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}
