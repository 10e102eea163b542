package phoenix

// PeekHeader reads the join_ref, ref, topic and event of a vsn 2.0.0 text
// frame without decoding its payload, so that a large frame can be
// refused from its header alone. Payload is left nil and nothing after
// the event is checked. ok is false when the header is not in the plain
// form it understands (refs null, a number or a string, and no escapes in
// any of the four strings); the caller then decodes the frame in full.
func PeekHeader(data []byte) (m Message, ok bool) {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '[' {
		return Message{}, false
	}
	var fields [4]string
	i++
	for k := range fields {
		i = skipSpace(data, i)
		s, next, ok := peekScalar(data, i, k >= 2)
		if !ok {
			return Message{}, false
		}
		fields[k] = s
		i = skipSpace(data, next)
		if i >= len(data) || data[i] != ',' {
			return Message{}, false
		}
		i++
	}
	return Message{JoinRef: fields[0], Ref: fields[1], Topic: fields[2], Event: fields[3]}, true
}

// peekScalar reads a string without escapes, or (unless needString) null
// or a number, at data[i]; it returns the value and the index after it.
func peekScalar(data []byte, i int, needString bool) (string, int, bool) {
	if i >= len(data) {
		return "", i, false
	}
	switch c := data[i]; {
	case c == '"':
		for j := i + 1; j < len(data); j++ {
			switch data[j] {
			case '"':
				return string(data[i+1 : j]), j + 1, true
			case '\\':
				return "", i, false
			}
			if data[j] < 0x20 {
				return "", i, false
			}
		}
		return "", i, false
	case needString:
		return "", i, false
	case c == 'n':
		if len(data)-i >= 4 && string(data[i:i+4]) == "null" {
			return "", i + 4, true
		}
		return "", i, false
	case c == '-' || (c >= '0' && c <= '9'):
		j := i + 1
		for j < len(data) && (data[j] >= '0' && data[j] <= '9') {
			j++
		}
		if j < len(data) && (data[j] == '.' || data[j] == 'e' || data[j] == 'E') {
			return "", i, false // left to the full decoder
		}
		if c == '-' && j == i+1 {
			return "", i, false
		}
		return string(data[i:j]), j, true
	}
	return "", i, false
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}
