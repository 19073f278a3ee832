package kubeflag

import "testing"

func TestNamespacedName(t *testing.T) {
	got, err := NamespacedName("wirespan-system/key")
	if err != nil || got.Namespace != "wirespan-system" || got.Name != "key" {
		t.Errorf("got %v, %v", got, err)
	}
	for _, bad := range []string{"", "key", "/key", "ns/", "a/b/c"} {
		if _, err := NamespacedName(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
