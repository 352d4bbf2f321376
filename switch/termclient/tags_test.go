package termclient

import (
	"reflect"
	"testing"
)

func TestParseTags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want [][2]string
	}{
		{[]string{"DI=SN-T0000001,SI=89860000000000009999"}, [][2]string{{"DI", "SN-T0000001"}, {"SI", "89860000000000009999"}}},
		// A location's comma is not a separator: no TAG= follows it.
		{[]string{"GL=39.9,116.4,DI=SN-T0000001"}, [][2]string{{"GL", "39.9,116.4"}, {"DI", "SN-T0000001"}}},
		{[]string{"DI=SN-T0000001,GL=31.230400,121.473700"}, [][2]string{{"DI", "SN-T0000001"}, {"GL", "31.230400,121.473700"}}},
		// A repeated flag: one argument per use.
		{[]string{"GL=39.9,116.4", "DI=x", ""}, [][2]string{{"GL", "39.9,116.4"}, {"DI", "x"}}},
		{[]string{"IF="}, [][2]string{{"IF", ""}}},
		{[]string{"IF=root,hook"}, [][2]string{{"IF", "root,hook"}}},
	} {
		got, err := ParseTags(c.args...)
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("ParseTags(%q) = %q, %v; want %q", c.args, got, err, c.want)
		}
	}
	for _, bad := range []string{"GL", "G=1", "GLX=1", ",DI=x", "D-=1"} {
		if _, err := ParseTags(bad); err == nil {
			t.Errorf("ParseTags(%q): no error", bad)
		}
	}
}
