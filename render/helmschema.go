package render

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"helm.sh/helm/v3/pkg/chart"
)

// noRefs refuses every schema a chart's values.schema.json points to outside itself. Helm's
// own check follows file:// and http(s):// references, so a chart in a pull request could
// read a file of the daemon's host into a render error, or make meshcd fetch a URL.
type noRefs struct{}

func (noRefs) Load(url string) (any, error) {
	return nil, fmt.Errorf("%s is outside the chart's schema: meshcd follows no $ref to a file or URL", url)
}

// checkChartSchema validates values against the chart's values.schema.json and those of its
// sub-charts (each with its own part of the values), as helm install does, offline.
func checkChartSchema(chrt *chart.Chart, values map[string]any) error {
	var problems []string
	if len(chrt.Schema) > 0 {
		if err := validateSchema(chrt.Schema, values); err != nil {
			problems = append(problems, fmt.Sprintf("values of chart %s do not match its values.schema.json: %v", chrt.Name(), err))
		}
	}
	for _, sub := range chrt.Dependencies() {
		raw, ok := values[sub.Name()]
		if !ok || raw == nil {
			continue
		}
		vals, ok := raw.(map[string]any)
		if !ok {
			problems = append(problems, fmt.Sprintf("values of sub-chart %s: want an object, got %T", sub.Name(), raw))
			continue
		}
		if err := checkChartSchema(sub, vals); err != nil {
			problems = append(problems, err.Error())
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

func validateSchema(schemaJSON []byte, values map[string]any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("the schema cannot be used: %v", r)
		}
	}()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schemaJSON))
	if err != nil {
		return fmt.Errorf("the schema is not JSON: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.UseLoader(noRefs{})
	const self = "meshcd:///values.schema.json"
	if err := c.AddResource(self, doc); err != nil {
		return err
	}
	s, err := c.Compile(self)
	if err != nil {
		return err
	}
	return s.Validate(values)
}
