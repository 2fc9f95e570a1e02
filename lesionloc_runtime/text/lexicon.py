"""The words and cue patterns of report assertion (lower-case text, placeholders blanked).
General radiology language, not any one template: docs/reports.md lists what each cue does."""

from __future__ import annotations

import re

__all__ = [
    "ANATOMY",
    "BACKWARD",
    "BORDERLINE",
    "CHANGE_MODIFIER",
    "CLAUSE_BREAK",
    "CLEAR_LABEL",
    "COMMUNICATION",
    "COMPARISON_LEAD",
    "CONNECTIVE",
    "EXAM",
    "FILLER",
    "FINDING_TERM",
    "GENERIC",
    "HEDGE",
    "HEDGE_BACK",
    "LIMITATION",
    "NEGATION",
    "NORMAL_CUE",
    "NO_CHANGE",
    "NO_PRIOR",
    "OPEN_END",
    "PARTIAL",
    "PLACEHOLDER",
    "QUERY_MARK",
    "RECOMMENDATION",
    "REQUEST",
    "SCOPE_END",
    "STABILITY",
    "TECHNIQUE_OBSCURING",
    "VERSUS",
    "VISIBILITY",
    "WORD",
    "triggered",
]


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


def _alt(text: str) -> str:
    """A regex alternation of space-separated phrases ("_" stands for white space)."""
    return "|".join(p.replace("_", r"\s+") for p in sorted(text.split(), key=len, reverse=True))


# De-identification placeholders (MIMIC "___", open-access "XXXX", older "[** ... **]"): opaque
# words that no cue may depend on. Matched on the original case.
PLACEHOLDER = re.compile(r"\[\*\*.*?\*\*\]|_{2,}|\bX{3,}(?=\b|[a-z])|(?<=[a-z-])X{3,}\b")
WORD = re.compile(r"[a-z][a-z'-]*")

# Words that carry nothing of their own: articles, copulas, prepositions, report verbs.
FILLER = _words(
    "the a an is are was were be been being am there here of in on at to by for from as and or "
    "nor with within this that these those it its their has have had again also now still noted "
    "note seen identified demonstrated demonstrates present visualized visualised appreciated "
    "evident shown shows show visible apparent observed detected which who than then just very "
    "evidence sign signs feature features any some overall redemonstrated re-demonstrated status "
    "post s/p since when both dr mr mrs ms appears appear appearing seems interval previously "
    "currently through"
)
# Exam names, views, technique, comparison and time words: a clause made only of these (and
# filler) has nothing on the image to localize.
EXAM = _words(
    "v vw vws wk wks chest thorax appearance appearances radiograph radiographs radiography x-ray "
    "xray x ray rays cxr film films view views image images imaging exam exams examination "
    "examinations study studies pa ap lateral lat frontal portable upright semi-upright "
    "semiupright semi erect supine decubitus oblique single one two three four mobile bedside "
    "projection projections obtained performed provided submitted taken acquired available "
    "comparison comparisons compared compare prior previous earlier recent most dated date none "
    "made today today's yesterday morning evening night hours hour hrs am pm a.m p.m time ct cta "
    "mri pet ultrasound correlation reviewed review patient position technique rotated rotation "
    "motion lordotic positioning underpenetrated overpenetrated penetrated limited suboptimal "
    "degraded quality routine interval preliminary final report reports version dictation "
    "included inspiratory same day days week weeks month months year years ago minutes earlier "
    "expiratory radiologic radiological"
)
# What a "no ... X" is about when X is no specific finding: a global normal statement.
GENERIC = _words(
    "acute active significant new definite definitive other evident visible radiographic "
    "radiographically cardiopulmonary cardiac pulmonary intrathoracic thoracic chest osseous bony "
    "skeletal bone lung lungs process processes abnormality abnormalities abnormal disease "
    "diseases findings finding pathology change changes interval gross obvious major appreciable "
    "substantial focal cardiothoracic intra-thoracic"
)
# Anatomy and location: "Stable mediastinal contours." says nothing abnormal.
ANATOMY = _words(
    "heart cardiac cardio cardiomediastinal mediastinal mediastinum hilar hila hilum hilus "
    "contour contours silhouette silhouettes size configuration lungs lung pulmonary vasculature "
    "vascularity vessels vascular osseous bones bone bony structures soft tissue tissues trachea "
    "tracheal pleura pleural diaphragm diaphragms hemidiaphragm hemidiaphragms costophrenic angle "
    "angles aorta chest wall thorax abdomen appearance appearances fields field zones zone "
    "cardiomediastinum right left bilateral bilaterally both upper lower mid middle lobe lobes "
    "base bases basal basilar apex apices apical perihilar retrocardiac lingula lingular midlung "
    "medial anterior posterior normal"
)

# Finding, device and post-surgical words: a "normal" statement that names one is a finding
# ("The ET tube is in normal position."), and a hedge after one does not make it uncertain.
FINDING_TERM = re.compile(
    r"\b(?:opacit|opacifi|consolidat|effusion|pneumothora|hydropneumothora|nodul|mass(?:es)?\b"
    r"|atelecta|o?edema|congest|cardiomegal|enlarg|pneumoni|infiltrat|fractur|thicken|scar"
    r"|fibro|emphysem|hyperinfla|hyperexpan|hyperlucen|collaps|lesion|densit|calcif|granulom"
    r"|widen|elevat|blunt|herni|deformit|degenerat|tortu|aneurysm|ectasi|dilat|tubes?\b"
    r"|catheter|lines?\b|pacemaker|pacer|wires?\b|clips?\b|stent|ports?\b|picc|drains?\b|device"
    r"|leads?\b|valve|prosthe|hardware|sternotomy|thoracotomy|lobectomy|pneumonectomy"
    r"|mastectomy|cabg|staple|coil|filter|icd\b|aicd|defibrillator|generator|electrode|air\s?space"
    r"|bronchiectasis|cavit|infect|aspiration|cyst|bulla|bleb|prominen|fullness|engorge"
    r"|volume\s+loss|low\s+lung\s+volume|pneumomediastinum|pneumoperitoneum|free\s+air"
    r"|shadowing|(?<!cardiac\s)(?<!heart\s)(?<!mediastinal\s)shadows?\b|haz[ey]|reticul"
    r"|interstitial|kerley|septal|cuffing|adenopathy|osteopen|kyphos"
    r"|scolios|spondyl|osteophyt|lymphadenopath|lucen|metasta|tumou?r|malignan|carcinoma|plaque|crowding"
    r"|redistribution|cephaliz|fluid|bronchogram|eventration|pectus|azygos|postoperative"
    r"|post-?surgical|surgical|obscur|shift|deviat|abnormalit|changes\b)",
)

# Statements of normality. "clear" only as a predicate ("lungs are clear", "Lungs: clear").
NORMAL_CUE = re.compile(
    r"\b(?:normal(?:ly)?|unremarkable|wnl|intact|preserved|sharp|midline|(?:is|are)\s+central"
    r"|symmetric(?:al)?(?:ly)?|nad|within\s+(?:the\s+)?(?:limits|range)|(?:are|is|remain|remains|appear"
    r"|appears|otherwise|now|and|grossly|essentially|largely|relatively|be|lungs?|fields?|chest)\s+clear"
    r"|clear\s+(?:lungs?|lung\s+fields|bilaterally|chest)|well[- ]?(?:expanded|aerated|inflated)"
    r"|(?:clearly|well|sharply)[- ](?:defined|delineated|demarcated)"
    r"|(?:less\s+than|under|below)\s*0?\.5\d?)\b"
)
# "Lungs: clear", and "clear" left alone once "otherwise" or "essentially" is set aside.
CLEAR_LABEL = re.compile(r":\s*clear\b|^\s*clear\b")

# Sizes at the edge of normal are findings: "Heart size is top normal."
BORDERLINE = re.compile(
    r"\b(?:top|high|upper)[- ]normal\b|\bupper\s+(?:limits?|range|end)\s+of\s+normal\b"
    r"|\bborderline\b"
)
# Words before a change cue that belong to it: "Complete interval resolution of ..."
CHANGE_MODIFIER = _words(
    "complete completely total totally interval significant rapid further substantial dramatic "
    "marked full fully now since"
)

# Stability and persistence: neutral words that take the kind of what they qualify.
NO_CHANGE = re.compile(
    r"\b(?:no|without)\s+(?:(?:significant|substantial|appreciable|definite|interval|relevant"
    r"|major|gross|radiographic|further|apparent|acute|new|other|obvious)\s+){0,3}changes?\b"
    r"|\bnot\s+(?:significantly\s+|substantially\s+)?changed\b"
)
STABILITY = re.compile(
    NO_CHANGE.pattern + r"|\b(?:little|minimal|slight|minor)\s+(?:interval\s+)?change\b"
    r"|\b(?:stable|stably|unchanged|unaltered|similar(?:ly)?|persist(?:s|ent|ing|ed)?|remain(?:s|ed|ing)?|again|redemonstrated"
    r"|re-demonstrated|otherwise|overall|essentially|grossly|since|from|compared|comparison)\b"
)
# Cues that make a clause "other" (nothing on the image): communication, recommendation,
# request, history and technique. A finding named before one keeps its own part.
COMMUNICATION = re.compile(
    r"\b(?:discussed|d/w|communicated|notified|paged|relayed|conveyed|informed|telephoned|phoned"
    r"|emailed|faxed|read[- ]back|acknowledged|were\s+called|was\s+called|called\s+to"
    r"|called\s+in|by\s+telephone|by\s+phone|via\s+telephone|on\s+the\s+telephone"
    r"|at\s+the\s+time\s+of\s+(?:dictation|interpretation|this\s+report)"
    r"|preliminary\s+(?:report|read|reading|interpretation)|wet\s+read"
    r"|(?:was|were|been)\s+(?:provided|dictated|reviewed|signed|issued)\s+by)\b"
)
RECOMMENDATION = re.compile(
    r"\b(?:recommend\w*|recs?\b|advis\w*|follow[- ]?ups?|followup|f/u|further\s+(?:evaluation|assessment"
    r"|characteri[sz]ation|imaging|workup|work-up)|correlat(?:e|ed|ion)\s+(?:clinically|with"
    r"|for|is|advised|recommended)|clinical(?:ly)?\s+correlat\w*|correlate\b|please|kindly"
    r"|(?:could|can|may|might|should)\s+be\s+(?:obtained|performed|considered|helpful)"
    r"|(?:may|might|would|could)\s+be\s+(?:helpful|useful|of\s+value)"
    r"|if\s+clinically\s+(?:indicated|warranted)|as\s+clinically\s+indicated"
    r"|(?:suggest|consider)\s+(?:a\s+|an\s+)?(?:repeat|follow|further|dedicated|ct|cta|mri|pet"
    r"|chest|cxr|radiograph|imaging|short|clinical|correlation|comparison|ultrasound|serial"
    r"|obtaining|decubitus|lateral|pa)"
    r"|repeat\s+(?:radiograph|film|cxr|imaging|study|chest|exam|examination|x-ray)\w*)"
)
REQUEST = re.compile(
    r"\A\W*(?:\d+\s*)?-?\s*(?:year|yr)s?[- ]old\b"
    r"|\A\W*(?:evaluate|eval|assess|rule\s+out|r/o|query\s+for|reason\s+for|history\s+of"
    r"|hx\s+of|clinical\s+(?:details|notes|information|history|indication)|indication)\b"
)
LIMITATION = re.compile(
    r"\b(?:limit(?:ed|ing|ation|ations)|(?<!normal\s)limits(?!\s+of\s+normal)|suboptimal|degraded|underpenetrated"
    r"|overpenetrated|lordotic|rotat(?:ed|ion)|motion|body\s+habitus|positioning"
    r"|not\s+(?:(?:fully|entirely|well)\s+)?(?:included|imaged|assessed|evaluated)"
    r"|partially\s+(?:imaged|excluded|included|visualized)|excluded\s+from"
    r"|(?:cannot|can\s?not|could\s+not|difficult\s+to)\s+(?:be\s+)?(?:assess|evaluat)\w*"
    r"|field\s+of\s+view|obscured\s+by\s+(?:the\s+)?(?:overlying|patient|soft|body|arms?"
    r"|motion|external|monitoring|breast))\b"
)
# What a limitation names that is no finding: "obscured by overlying soft tissue".
TECHNIQUE_OBSCURING = re.compile(r"\bobscured\s+by\s+(?:the\s+)?(?:overlying|patient|soft|body"
                                 r"|arms?|motion|external|monitoring|breast)\b[^,;]*")
COMPARISON_LEAD = re.compile(
    r"\A\W*(?:(?:as|when)\s+)?(?:compared|comparison|in\s+comparison|relative)\s+(?:to|with)"
    r"\b[^,;]*,|\A\W*since\s+(?:the\s+)?(?:prior|previous|last|___)\b[^,;]*,"
)
NO_PRIOR = re.compile(
    r"\bno\s+(?:prior|previous|old|outside|comparison)\s+(?:\w+\s+){0,2}?(?:stud|exam|film"
    r"|radiograph|imag|chest|for\s+comparison|available|comparison)"
    r"|\bcomparisons?\s*:?\s*(?:none|not\s+available|n/a|nil)\b"
    r"|\b(?:prior|previous|old|outside|comparison)\s+(?:\w+\s+){0,3}?(?:is|are|was|were)\s+not"
    r"\s+available|\bnot\s+available\s+for\s+comparison"
)

# Clause boundaries: negation and hedging never cross them.
CLAUSE_BREAK = re.compile(
    r"\b(?:but|however|although|though|whereas|while|except(?:\s+for)?|aside\s+from|apart\s+from"
    r"|other\s+than|with\s+the\s+exception\s+of|besides|and\s+(?=there\b))\b"
    r"|;|,\s*(?=(?:which|otherwise|with|there)\b)"
)

# Uncertainty. Backward: the clause before it is hedged ("Pneumonia cannot be excluded").
HEDGE_BACK = re.compile(
    r"\b(?:can\s?not|can't|could\s+not|couldn't|may\s+not|is\s+not|are\s+not|not)\s+(?:be\s+)?"
    r"(?:(?:entirely|completely|totally|definitely|fully|confidently|definitively)\s+)?"
    r"(?:excluded|ruled\s+out)\b|\b(?:difficult|impossible)\s+to\s+(?:exclude|rule\s+out)\b"
    r"|\b(?:is|are|was|were)\s+(?:(?:also|still|less|more|most|felt\s+to\s+be)\s+)?(?:possible"
    r"|likely|probable|suspected|questioned|favou?red|a\s+consideration|a\s+possibility"
    r"|considered)\b(?=\s*(?:$|[.,;:)]|in\b|given\b|clinically\b|if\b|as\b|on\b))"
    r"|\b(?:may|might|could)\s+(?:also\s+)?be\s+present\b"
    r"|\b(?:is|are)\s+(?:likely|probably|possibly)\s+present\b"
)
# Forward: what follows it is hedged ("Possible small effusion", "may represent edema").
HEDGE = re.compile(
    r"\b(?:possible|possibly|poss|probable|probably|prob|likely|presumed|presumably|perhaps|maybe"
    r"|questionabl[ey]|question\s+of|equivocal|suspicious\s+(?:for|of)"
    r"|concerning\s+for|worrisome\s+for|suggestive\s+of|suggest(?:s|ing)?|suspect(?:ed)?"
    r"|possibility\s+of|versus|vs\.?|query|differential\s+(?:diagnosis\s+)?(?:includes|include"
    r"|considerations)|raises?\s+(?:the\s+)?(?:possibility|concern)|raising\s+(?:the\s+)?"
    r"(?:possibility|concern)|(?:may|might|could|can)\s+(?:also\s+)?(?:represent|reflect|be"
    r"|indicate|relate|correspond|account|signify|suggest|mean)"
    r"|(?:can\s?not|can't|could\s+not|not)\s+(?:entirely\s+|completely\s+)?(?:exclude|rule\s+out))\b"
)
# A query mark before a word (British "?consolidation"), not after one.
QUERY_MARK = re.compile(r"(?<![\w?])\?\s*(?=[a-z])")
VERSUS = re.compile(r"\b(?:versus|vs\.?)(?=\s)")

# Negation. Forward cues negate what follows; "not" also negates its subject.
_NOT_NEG = (
    r"(?!\s+(?:(?:yet|completely|fully|entirely|totally|significantly|substantially|only"
    r"|definitely|confidently)\s+)*(?:resolved|cleared|removed|changed|excluded|ruled|exclude"
    r"|rule|only|included|imaged|assessed|evaluated))"
)
NEGATION = re.compile(
    r"\b(?:no(?!\.?\s*[\d#])|without|w/o|negative\s+for|free\s+of|clear\s+of|absence\s+of|absent|nil|neither"
    r"|nor|never|none|unlikely|not" + _NOT_NEG + r"|negative|resolution\s+of|resolved"
    r"|removal\s+of|removed|clearing\s+of|cleared|extubat\w*|discontinued|ruled\s+out|pulled(?!\s+back)"
    r"|(?:is|are|was|were|been)\s+excluded)\b"
)
# Cues that negate their subject: "Pleural effusions are not seen", "The tube was removed".
BACKWARD = frozenset(
    "not absent none unlikely negative resolved removed cleared discontinued extubated pulled".split()
)
# Partial change is persistence: "near complete resolution", "has not completely cleared".
PARTIAL = re.compile(
    r"(?:\b(?:near(?:ly)?|partial(?:ly)?|incomplete(?:ly)?|almost|near-complete|near-total|largely"
    r"|mostly|substantially|slowly|continued|ongoing|improving)\s+(?:(?:complete(?:ly)?|total(?:ly)?"
    r"|interval)\s+)?|\b(?:not|never)\s+(?:yet\s+)?(?:(?:completely|fully|entirely|totally)\s+)?)$"
)
# "not seen on the prior study", "not well seen on the lateral view": visibility elsewhere,
# not absence.
VISIBILITY = re.compile(
    r"\A\s+(?:(?:as\s+)?well|clearly|previously|definitely|as\s+clearly)?\s*(?:seen|visuali[sz]ed"
    r"|identified|evident|present|appreciated|demonstrated|visible|apparent|detected"
    r"|delineated|defined|assessed)\b(?:\s+as\b)?(?:\s+(?:on|in|at|with)\s+(?:the\s+|this\s+"
    r"|a\s+|an\s+|any\s+)?(?:prior|previous|earlier|preceding|old|older|outside|lateral"
    r"|frontal|pa|ap|oblique|comparison|recent|initial|ct|remote|last|other)\b|\s+(?:on|in)\s+"
    r"(?:the\s+)?(?:study|exam|examination|radiograph|film|ct|chest\s+\w+)\s+(?:of|from|dated)\b"
    r"|\s+(?:previously|before|earlier|then|at\s+that\s+time|in\s+retrospect))"
    r"|\A\s+(?:(?:as\s+)?well|previously|as\s+clearly)\s+(?:seen|visuali[sz]ed|identified"
    r"|evident|present|appreciated|demonstrated|visible|delineated|defined)\b"
)
# A negation's scope ends where a positive statement starts after a comma or "and".
SCOPE_END = re.compile(
    r"\b(?:and)\s+(?=(?:a|an|the|this|these|there|its|right|left|bilateral|bibasilar|mild"
    r"|mildly|moderate|moderately|severe"
    r"|severely|small|tiny|trace|minimal|minor|stable|persistent|unchanged|increased|increasing"
    r"|decreased|decreasing|improved|improving|worsening|worsened|chronic|old|healed|\d)\b)"
    r"|,\s*(?=(?:a|an|the|this|these|there|its|mild|mildly|moderate|moderately|severe|severely"
    r"|small|tiny|trace|minimal|minor|stable|persistent|unchanged|increased|increasing|decreased"
    r"|decreasing|improved|improving|worsening|worsened|chronic|old|healed|which|who|\d)\b)"
)
# Words that end a subject waiting for its predicate: "The heart is | not enlarged".
OPEN_END = _words(
    "is are was were be been being has have had remains remain appears appear seems of the a an "
    "to in on at by for from demonstrates demonstrate shows show showed reveals reveal revealed "
    "there which that evidence signs"
)
# Leading and trailing words a grounded span does without.
CONNECTIVE = re.compile(
    r"(?:[\s,;:.\-]|\b(?:and|or|but|however|although|though|whereas|while|with"
    r"|except(?:\s+for)?|aside\s+from|apart\s+from|other\s+than|besides|the\s+exception\s+of"
    r"|which)\b)+"
)

# Words without which a pattern cannot match: a sentence's words are collected once, and a
# pattern runs only on sentences that have one of its trigger words (tests check that every
# match in the corpus has one).
TRIGGERS: dict[str, frozenset[str]] = {
    name: _words(words) for name, words in {
        "prior": "prior previous old outside comparison",
        "communication": "discussed d communicated notified paged relayed conveyed informed "
                         "telephoned phoned emailed faxed read acknowledged called telephone "
                         "phone time preliminary wet provided dictated reviewed signed issued",
        "recommendation": "recommend recommended recommends recommending recommendation rec recs f "
                          "recommendations advise advised advises advising advisable advisory "
                          "advice follow followup followups further correlate correlated "
                          "correlation clinical clinically please kindly obtained performed "
                          "considered helpful useful value suggest consider repeat",
        "limitation": "limited limiting limitation limitations limits suboptimal degraded "
                      "underpenetrated overpenetrated lordotic rotated rotation motion habitus "
                      "positioning included imaged assessed evaluated partially excluded assess "
                      "assessment evaluate evaluation evaluating assessing field obscured",
        "hedge_back": "excluded exclude ruled rule possible likely probable suspected questioned "
                      "favored favoured consideration possibility considered present",
        "negation": "no not without w negative free clear absence absent nil neither nor never "
                    "none unlikely resolution resolved removal removed clearing cleared "
                    "extubated extubation extubate extubating discontinued ruled excluded pulled",
        "stability": "change changes changed stable stably unchanged unaltered similar similarly "
                     "persist persists persistent persisting persisted remain remains remained "
                     "remaining again redemonstrated demonstrated otherwise overall essentially "
                     "grossly since from compared comparison",
        "normal": "normal normally unremarkable wnl nad intact preserved sharp midline central "
                  "symmetric symmetrical within clear expanded aerated inflated defined "
                  "delineated demarcated than under below",
        "hedge": "possible possibly poss probable probably prob likely presumed presumably perhaps maybe "
                 "questionable questionably question equivocal suspicious concerning worrisome "
                 "suggestive suggest suggests suggesting suspect suspected possibility versus vs "
                 "query differential raise raises raising may might could can cannot exclude "
                 "rule not",
        "borderline": "top high upper borderline",
    }.items()
}
_TOKEN = re.compile(r"[a-z]+")


def triggered(text: str) -> frozenset[str]:
    """The pattern groups that can match somewhere in `text` (lower case)."""
    tokens = frozenset(_TOKEN.findall(text))
    return frozenset(name for name, words in TRIGGERS.items() if not words.isdisjoint(tokens))
