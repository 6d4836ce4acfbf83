package migrate

import (
	"strconv"
	"strings"
)

// Type narrowing: whether changing a column's type can lose values.

func normaliseType(s string) string {
	s = strings.ToLower(strings.Join(strings.Fields(s), " "))
	s = strings.ReplaceAll(s, " (", "(")
	s = strings.ReplaceAll(s, "( ", "(")
	s = strings.ReplaceAll(s, " )", ")")
	s = strings.ReplaceAll(s, " ,", ",")
	return s
}

// typeClass describes a column type for the narrowing check.
type typeClass struct {
	family string // int, text, numeric, float, time, other
	size   int64  // bits for int and float, characters for text (0 = unbounded), precision for numeric
	scale  int64
	name   string
}

func classify(t string) typeClass {
	base, args, _ := strings.Cut(t, "(")
	base = strings.TrimSpace(base)
	var nums []int64
	for _, a := range strings.Split(strings.TrimSuffix(args, ")"), ",") {
		if n, err := strconv.ParseInt(strings.TrimSpace(strings.Fields(a + " x")[0]), 10, 64); err == nil {
			nums = append(nums, n)
		}
	}
	base = strings.TrimSpace(strings.TrimSuffix(strings.TrimSuffix(base, " unsigned"), " signed"))
	c := typeClass{name: base}
	switch base {
	case "tinyint", "int1":
		c.family, c.size = "int", 8
	case "smallint", "int2", "smallserial":
		c.family, c.size = "int", 16
	case "mediumint":
		c.family, c.size = "int", 24
	case "int", "integer", "int4", "serial":
		c.family, c.size = "int", 32
	case "bigint", "int8", "bigserial":
		c.family, c.size = "int", 64
	case "real", "float4", "float":
		c.family, c.size = "float", 32
	case "double", "double precision", "float8":
		c.family, c.size = "float", 64
	case "numeric", "decimal":
		c.family = "numeric"
		if len(nums) > 0 {
			c.size = nums[0]
		}
		if len(nums) > 1 {
			c.scale = nums[1]
		}
	case "char", "character", "nchar", "varchar", "character varying", "nvarchar", "varchar2":
		c.family = "text"
		if len(nums) > 0 {
			c.size = nums[0]
		}
	case "text", "clob", "longtext":
		c.family = "text"
	case "tinytext":
		c.family, c.size = "text", 255
	case "mediumtext":
		c.family, c.size = "text", 16777215
	case "timestamp", "timestamptz", "timestamp with time zone", "timestamp without time zone", "datetime", "date":
		c.family = "time"
	default:
		c.family = "other"
	}
	return c
}

// narrowing explains why changing a column from old to new type can lose
// values, or returns "" when it cannot.
func narrowing(old, new string, known bool) string {
	if !known || old == "" {
		return "to " + new + " (no earlier migration defines the column, so it cannot be shown to be widening)"
	}
	if old == new {
		return ""
	}
	o, n := classify(old), classify(new)
	ok := false
	switch {
	case o.family == "int" && n.family == "int":
		ok = n.size >= o.size
	case o.family == "float" && n.family == "float":
		ok = n.size >= o.size
	case o.family == "text" && n.family == "text":
		ok = n.size == 0 || (o.size != 0 && n.size >= o.size)
	case o.family == "numeric" && n.family == "numeric":
		ok = n.size == 0 || (o.size != 0 && n.size-n.scale >= o.size-o.scale && n.scale >= o.scale)
	case o.family == "int" && n.family == "numeric":
		digits := map[int64]int64{8: 3, 16: 5, 24: 8, 32: 10, 64: 19}[o.size]
		ok = n.size == 0 || n.size-n.scale >= digits
	case n.family == "text" && n.size == 0:
		// Every value has a text form.
		ok = true
	case o.family == "time" && n.family == "time":
		ok = o.name == "date" || n.name != "date"
	}
	if ok {
		return ""
	}
	return "from " + old + " to " + new + " narrows it"
}
