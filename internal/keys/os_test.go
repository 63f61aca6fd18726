package keys_test

import "os"

var osStat = os.Stat
