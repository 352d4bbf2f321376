package qr

import (
	"strings"
	"unicode"
)

// MaxName is the longest merchant name ID 59 carries, in characters (EMVCo: ans
// 25); MaxAltName the longest of the language template's (ID 64, its ID 01).
const (
	MaxName    = 25
	MaxAltName = 25
)

// iso639 holds the ISO 639-1 two-letter language codes (lower case), the codes the
// language template's language preference (ID 64, its ID 00) takes. Deprecated
// codes (iw, in, ji, jw, mo, sh, bh) are not among them: a wallet compares the
// preference with its user's language, which it names by the current code.
var iso639 = func() map[string]bool {
	m := map[string]bool{}
	for _, c := range strings.Fields(`
aa ab ae af ak am an ar as av ay az
ba be bg bi bm bn bo br bs
ca ce ch co cr cs cu cv cy
da de dv dz
ee el en eo es et eu
fa ff fi fj fo fr fy
ga gd gl gn gu gv
ha he hi ho hr ht hu hy hz
ia id ie ig ii ik io is it iu
ja jv
ka kg ki kj kk kl km kn ko kr ks ku kv kw ky
la lb lg li ln lo lt lu lv
mg mh mi mk ml mn mr ms mt my
na nb nd ne ng nl nn no nr nv ny
oc oj om or os
pa pi pl ps pt
qu
rm rn ro ru rw
sa sc sd se sg si sk sl sm sn so sq sr ss st su sv sw
ta te tg th ti tk tl tn to tr ts tt tw ty
ug uk ur uz
ve vi vo
wa wo
xh
yi yo
za zh zu`) {
		m[c] = true
	}
	return m
}()

// ValidLanguage reports whether code is an ISO 639-1 language code (two letters,
// either case): "zh", "ZH", "ja" are; "cn" and "jp" (country codes) are not.
func ValidLanguage(code string) bool {
	return len(code) == 2 && iso639[strings.ToLower(code)]
}

// scriptLanguages are the scripts that name the language of a merchant's name on
// their own: each is written by one language in the switch's markets (Han by
// Chinese unless kana or Hangul say Japanese or Korean, below). Latin, Cyrillic,
// Arabic, Devanagari and the other scripts many languages share are not here:
// their name's language must be given (the merchant's name_language).
var scriptLanguages = []struct {
	script *unicode.RangeTable
	lang   string
}{
	{unicode.Han, "ZH"}, {unicode.Bopomofo, "ZH"},
	{unicode.Hiragana, "JA"}, {unicode.Katakana, "JA"},
	{unicode.Hangul, "KO"},
	{unicode.Thai, "TH"}, {unicode.Lao, "LO"}, {unicode.Khmer, "KM"}, {unicode.Myanmar, "MY"},
	{unicode.Tibetan, "BO"}, {unicode.Mongolian, "MN"}, {unicode.Yi, "II"},
	{unicode.Greek, "EL"}, {unicode.Hebrew, "HE"}, {unicode.Georgian, "KA"}, {unicode.Armenian, "HY"},
}

// NameLanguage returns the language preference (ID 64, its ID 00: ISO 639-1, upper
// case) that name's script implies, or "" when it implies none. Digits,
// punctuation, symbols and Latin letters (ASCII or not: a Chinese shop's name
// often has a Latin brand in it) say nothing. Han says "ZH" unless the name also
// has kana ("JA": Japanese writes Han with kana) or Hangul ("KO"); each other
// script of scriptLanguages says its language. A name with a letter of any other
// script (Cyrillic, Arabic, Latin alone...), or with letters of two languages
// (kana and Hangul), implies none.
func NameLanguage(name string) string {
	found := map[string]bool{}
	for _, r := range name {
		if !unicode.IsLetter(r) || unicode.Is(unicode.Latin, r) || unicode.Is(unicode.Common, r) || unicode.Is(unicode.Inherited, r) {
			continue
		}
		lang := ""
		for _, s := range scriptLanguages {
			if unicode.Is(s.script, r) {
				lang = s.lang
				break
			}
		}
		if lang == "" {
			return "" // a script many languages share
		}
		found[lang] = true
	}
	// Japanese and Korean names may have Han in them; Chinese ones have no kana.
	if found["ZH"] && (found["JA"] != found["KO"]) {
		delete(found, "ZH")
	}
	if len(found) != 1 {
		return ""
	}
	for l := range found {
		return l
	}
	return ""
}
