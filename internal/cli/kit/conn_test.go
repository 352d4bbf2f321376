package kit

import (
	"strings"
	"testing"
)

func TestExtractConn(t *testing.T) {
	env := func(k string) string {
		if k == "SWITCHYARD_TOKEN" {
			return "from-env"
		}
		return ""
	}
	c, rest, err := ExtractConn([]string{"freeze", "000000000000001", "--admin", "http://10.0.0.1:9000", "--reason", "x", "-token=abc"}, env)
	if err != nil || c.AdminURL != "http://10.0.0.1:9000" || c.Token != "abc" || c.DataDir != "" ||
		strings.Join(rest, " ") != "freeze 000000000000001 --reason x" {
		t.Errorf("ExtractConn = %+v %q %v", c, rest, err)
	}
	c, rest, err = ExtractConn([]string{"list", "--data=/var/lib/sy", "--json"}, env)
	if err != nil || c.AdminURL != DefaultAdminURL || c.Token != "from-env" || c.DataDir != "/var/lib/sy" || strings.Join(rest, " ") != "list --json" {
		t.Errorf("ExtractConn = %+v %q %v", c, rest, err)
	}
	if _, _, err := ExtractConn([]string{"list", "--token"}, nil); err == nil {
		t.Error("--token without a value: no error")
	}
	if c.Client().BaseURL != DefaultAdminURL || c.Client().Token != "from-env" {
		t.Errorf("Client = %+v", c.Client())
	}
}

// TestExtractConnAdminFromEnv: $SWITCHYARD_ADMIN is the default of --admin, as
// $SWITCHYARD_TOKEN is of --token, and the flag wins over it.
func TestExtractConnAdminFromEnv(t *testing.T) {
	env := func(k string) string {
		return map[string]string{"SWITCHYARD_ADMIN": "http://10.1.2.3:8443", "SWITCHYARD_TOKEN": "tok"}[k]
	}
	c, _, err := ExtractConn([]string{"list"}, env)
	if err != nil || c.AdminURL != "http://10.1.2.3:8443" || c.Token != "tok" {
		t.Errorf("from env: %+v %v", c, err)
	}
	c, _, err = ExtractConn([]string{"list", "--admin=http://127.0.0.1:9"}, env)
	if err != nil || c.AdminURL != "http://127.0.0.1:9" {
		t.Errorf("flag over env: %+v %v", c, err)
	}
}
