"""The words and cue patterns of report assertion (lower-case text, placeholders blanked).
General radiology language, not any one template: docs/reports.md lists what each cue does."""

from __future__ import annotations

import re

from lesionloc_runtime.text.other_cues import (  # the cues of "other", re-exported
    COMMUNICATION,
    COMPARING,
    COMPARISON_LEAD,
    DIAGNOSIS,
    EXAM_NAME,
    FITNESS,
    HYPOTHETICAL,
    LIMITATION,
    NO_PRIOR,
    OTHER_LABEL,
    PURPOSE,
    RECOMMENDATION,
    REFERENCE,
    REQUEST,
    SEEN_ON,
    TECHNIQUE_OBSCURING,
    VIEW_SIDE,
)
from lesionloc_runtime.text.triggers import TRIGGERS, triggered  # re-exported
from lesionloc_runtime.text.vocabulary import (  # the word classes, re-exported
    ADMIN,
    ANATOMY,
    CHANGE_MODIFIER,
    DESCRIPTOR,
    EXAM,
    EXAM_LABELS,
    EXAM_SUBJECT,
    FILLER,
    GENERIC,
    KNOWN,
    LOCATION,
    OPEN_END,
    SYMPTOMS,
)

__all__ = [
    "ADMIN",
    "ANATOMY",
    "BACKWARD",
    "BORDERLINE",
    "CHANGE_MODIFIER",
    "CLAUSE_BREAK",
    "CLEAR_LABEL",
    "COMMUNICATION",
    "COMPARING",
    "COMPARISON_LEAD",
    "CONNECTIVE",
    "DESCRIPTOR",
    "DIAGNOSIS",
    "EXAM",
    "EXAM_LABELS",
    "EXAM_NAME",
    "EXAM_SUBJECT",
    "FILLER",
    "FINDING_TERM",
    "FITNESS",
    "GENERIC",
    "HEDGE",
    "HEDGE_BACK",
    "HYPOTHETICAL",
    "KNOWN",
    "LIMITATION",
    "LOCATION",
    "ILO_GRADE",
    "LOW_VOLUMES",
    "MAYBE_PLACEHOLDER",
    "NEGATION",
    "NORMAL_ATTRIBUTE",
    "NORMAL_CUE",
    "NO_CHANGE",
    "NO_CHANGE_WORD",
    "NO_SIGNIFICANCE",
    "NO_PRIOR",
    "OPEN_END",
    "OTHER_LABEL",
    "PARTIAL",
    "PARTIAL_AFTER",
    "PLACEHOLDER",
    "PURPOSE",
    "QUERY_MARK",
    "RECOMMENDATION",
    "REFERENCE",
    "REQUEST",
    "SCOPE_END",
    "SCOPE_END_CHANGE",
    "SEEN_ON",
    "STABILITY",
    "SYMPTOMS",
    "TECHNIQUE_OBSCURING",
    "TRIGGERS",
    "VERSUS",
    "VIEW_SIDE",
    "VISIBILITY",
    "WORD",
    "triggered",
]


def _alt(text: str) -> str:
    """A regex alternation of space-separated phrases ("_" stands for white space)."""
    return "|".join(p.replace("_", r"\s+") for p in sorted(text.split(), key=len, reverse=True))


# De-identification placeholders (MIMIC "___", open-access "XXXX", older "[** ... **]"): opaque
# words that no cue may depend on. Matched on the original case.
PLACEHOLDER = re.compile(
    r"\[\*\*.*?\*\*\]|_{2,}|\bX{3,}(?=\b|[a-z])|(?<=[a-z-])X{3,}\b|\bX{1,2}/X{1,2}/X{2,4}\b"
    # Other de-identification tools: [DATE], [NAME], <PERSON>, <<REDACTED>>, {{DATE}},
    # **DATE[Mar 3 2019], ***NAME***.
    r"|\[[A-Z][A-Z0-9 _/.-]{1,30}\]|<{1,2}[A-Z][A-Z0-9 _-]{1,30}>{1,2}|\{\{[^{}\n]{1,40}\}\}"
    r"|\*{2,3}[A-Z]+(?:\[[^\]\n]{0,80}\]|\*{2,3})"
)
# Where a placeholder may be: sentences without any of these skip the substitution.
MAYBE_PLACEHOLDER = re.compile(r"__|XX|\[|<|\{\{|\*\*")
# A word starts after a non-word character: "0915h", "4cm" and "x2" carry no word.
WORD = re.compile(r"\b[a-z][a-z'-]*")


# Low lung volumes limit a study and are a finding: "Study is limited by low lung volumes."
LOW_VOLUMES = re.compile(r"\b(?:low|decreased|reduced|diminished)\s+lung\s+volumes?\b"
                         r"|\blung\s+volumes?\s+(?:have\s+|has\s+)?(?:decreased|diminished)\b")
# An ILO profusion grade of 1/0 or more: small opacities are there ("Classification: ILO 1/0").
ILO_GRADE = r"\bilo\b[^.;]{0,30}?\b[123]\s*/\s*[0-3]\b"
# Finding, device and post-surgical words: a "normal" statement that names one is a finding
# ("The ET tube is in normal position."), and a hedge after one does not make it uncertain.
FINDING_TERM = re.compile(
    r"\b(?:opacit|opacifi|consolidat|effusion|pneumothora|hydropneumothora|nodul|mass(?:es)?\b"
    r"|atelecta|o?edema|congest|cardiomegal|enlarg|[a-z]*pneumoni|infiltrat|fractur|thicken|scar"
    r"|fibro|emphysem|hyperinfla|hyperexpan|hyperlucen|collaps|lesion|densit|calcif|granulom"
    r"|widen|elevat|blunt|herni|deformit|degenerat|tortu|aneurysm|ectasi|dilat|tubes?\b"
    r"|catheter|lines?\b|pacemaker|pacer|wires?\b|clips?\b|stent|ports?\b|picc|drains?\b|device"
    r"|leads?\b|valve|prosthe|hardware|sternotomy|thoracotomy|lobectomy|pneumonectomy"
    r"|mastectomy|cabg|tav[ri]\b|[am]vr\b|staple|coil|filter|icd\b|aicd|defibrillator|generator|electrode|air\s?space|(?<!nipple\s)marker"
    r"|(?<=cervical\s)collar|ground[- ]?glass|notching|generous"
    r"|bronchiectasis|(?<!chest\s)(?<!thoracic\s)(?<!pleural\s)cavit|infect|aspiration|cyst|bulla|bleb|prominen|fullness|engorge"
    r"|volume\s+loss|pneumomediastinum|pneumoperitoneum|free\s+air|intubat"
    r"|" + LOW_VOLUMES.pattern + r"|" + ILO_GRADE +
    r"|shadowing|(?<!cardiac\s)(?<!heart\s)(?<!mediastinal\s)(?<!thymic\s)(?<!tissue\s)shadows?\b|haz[ey]|reticul"
    r"|interstitial|kerley|septal|cuffing|adenopathy|osteopa?en|kyphos"
    r"|scolios|spondyl|osteophyt|lymphadenopath|lucen|metasta|tumou?r|malignan|carcinoma|plaque|crowding|asbesto"
    r"|redistribution|cephaliz|fluid|bronchogram|eventration|pectus|azygos|postoperative(?!ly)"
    r"|post-?surgical|surgical|obscur|shift|deviat|abnormalit|(?<=[a-z][\s-])changes\b|dissect|dextrocardi"
    r"|pneumopericard|pneumatocel|abscess|empyema|ha?emothora|chylothora|loculat|air[- ]?trapping"
    r"|air[- ]fluid|foreign\s+bod|bronchiecta|honeycomb|tubercul|tb\b|sarcoid|lymphangit|mets\b"
    r"|flatten|hazi|ptx\b|pna\b|atx\b|fx\b|chf\b|copd\b|ards\b|ild\b|cvc\b|ett\b|ngt\b|ogt\b"
    r"|[no]g\s+tube|iabp\b|ecmo\b|impella|cannula|tips?\b|tracheostom|sutures?\b|mesh\b|pads?\b"
    r"|ecg\b|ekg\b|cath\b|shunt|stimulator|expander|implant|[lu]rti\b|unfold|band\b|chemoport|port-?a-?cath|mediport"
    r"|obliterat|meniscus|capping|apical\s+caps?\b|uvc\b|uac\b|lobulat|deep\s+sulcus"
    # a named radiographic sign: "Continuous diaphragm sign suggests pneumomediastinum."
    r"|(?:sulcus|diaphragm|silhouette|sail|spinnaker|crescent|golden\s+s|double\s+density|tram[- ]?track"
    r"|cervicothoracic|hilum\s+overlay|fallen\s+lung)\s+sign"
    r"|primary\s+complex|ghon\b|surfactant|hyaline\s+membrane|non-?accidental|pneumatoc"
    r"|coins?\b|batter(?:y|ies)\b|bullets?\b|pellets?\b|shrapnel"
    r"|transient\s+tachypno?ea|ttn\b"
    r"|(?:ctr|cardio-?thoracic\s+ratio)\s+(?:is\s+|of\s+|=\s*|:\s*)?(?:about\s+|approximately\s+)?0?\.(?:5[1-9]|[6-9])"
    r"|(?:ctr|cardio-?thoracic\s+ratio)\s+(?:is\s+)?(?:increased|raised|high)"
    # Words made with a suffix of disease or surgery: hamartoma, bronchitis, stenosis,
    # atrophy, thoracoplasty (not diagnosis, prognosis).
    r"|(?![a-z]*gnosis)[a-z]+(?:omas?|omata|itis|osis|ectasis|megaly|ectom(?:y|ies)|otom(?:y|ies)"
    r"|ostom(?:y|ies)|plast(?:y|ies)|cele|pathy|rrhage|trophy|plasia)\b"
    # A measurement describes something on the film: "ETT 4 cm above the carina".
    r"|\d+(?:\.\d+)?\s*(?:mm|cm)\b|narrowing|ptb\b|koch)",
)

# Statements of normality. "clear" only as a predicate ("lungs are clear", "Lungs: clear").
NORMAL_CUE = re.compile(
    r"\b(?:normal(?:ly)?|nml|nl|unremarkable|wnl|intact|preserved|sharp|midline|centrally|central(?!\s+(?:venous|line|hospital|clinic|imaging|radiology|health))|in\s+the\s+(?:midline|middle)|(?<!well\s)cent(?:red|ered)"
    r"|symmetric(?:al)?(?:ly)?|(?:are|is)\s+(?:free|smooth|fine|healthy|open)(?!\s+of)|natural\s+appearance|in\s+axis"
    r"|average\s+(?:size|cardiac|heart)|nad|within\s+(?:the\s+)?(?:limits|range)|(?:are|is|remain|remains|appear"
    r"|appears|otherwise|now|and|grossly|essentially|largely|relatively|be|seen|lungs?|fields?|chest|parenchyma"
    r"|spaces?|angles?|recesses|bases|apices|zones)\s+clear"
    r"|clear\s+(?:lungs?|lung\s+fields|bilaterally|chest)|\bclr(?=\s*(?:[.,;]|\Z))"
    r"|(?:well|fully)[- ]?(?:expanded|aerated|inflated|ventilated)"
    r"|(?:ventilated|aerated|expanded|inflated)\s+(?:equally|symmetrically|evenly)"
    r"|(?:properly|adequately|normally)\s+(?:aerated|expanded|inflated|ventilated)|within\s+(?:the\s+)?norm\b"
    r"|(?:adequate|normal|good|preserved)\s+(?:aeration|ventilation|expansion|inflation)"
    r"|(?:clearly|well|sharply)[- ](?:defined|delineated|demarcated|outlined)"
    r"|(?:less\s+than|under|below)\s*0?\.5\d?"
    # Translated and regional phrasings: "Free costophrenic angles.", "Sinuses free.", "Lung
    # fields are transparent.", "Roots are structural.", "Mediastinum of usual characteristics.",
    # "Satisfactory chest x-ray appearances."
    r"|free\s+(?:\w+\s+){0,2}?(?:costo|cardio)-?(?:phrenic|diaphragmatic)"
    r"|(?:angles?|sinus(?:es)?|sulci|recess(?:es)?|cul-de-sacs?)\s+(?:(?:are|is|remain)\s+)?free"
    r"|(?:are|is|fields?|lungs?|parenchyma)\s+(?:\w+\s+)?(?:transparent|structural)|of\s+usual\s+\w+"
    r"|usual\s+(?:characteristics|configuration|shape|appearance|size|position|form)"
    r"|of\s+vascular\s+(?:aspect|appearance|structure)|in\s+(?:a\s+|the\s+)?median\s+(?:position|line)"
    r"|(?:normal|usual|preserved|adequate|regular)\s+transparency|:\s*cent(?:er|re)\b|integrity\s+of\b"
    r"|(?:are|is)\s+good\b|ctr\s*(?:<|less\s+than|under|below)\s*(?:50(?=\s*%)|0?\.5\b)"
    # a cardiothoracic ratio given as a value no greater than 0.5: "Cardiothoracic ratio is 0.45."
    r"|(?:cardio-?thoracic\s+(?:ratio|index)|ctr|cti)\s*(?:(?:is|of|at|=|:|~|measures|measuring"
    r"|approximately|about)\s*)*(?:0?\.(?:[2-4]\d?|50?)\b(?!\s*(?:-|to)\s*0?\.[5-9])|(?:[2-4]\d|50)\s*%)"
    # "Bones ok.", "Heart size N.", "Lungs look clear."
    r"|\bok(?:ay)?\b(?!\s+(?:to|for)\b)|(?<=size\s)n(?=\s*\.?\s*\Z)|looks?\s+(?:clear|healthy)"
    r"|structural(?=\s*(?:[,.;]|\Z))|contours?\s+(?:are\s+)?clear"
    r"|(?:clear|even|smooth|regular)\s*,?\s+(?:(?:clear|even|smooth|regular)\s+)?contours?"
    r"|satisfactory\s+(?:[\w-]+\s+){0,3}?appearances?"
    r"|(?:mediastin\w*|trachea|heart|diaphragm\w*|hemidiaphragm\w*|domes?|hila|hil(?:um|us))\b[^;.]{0,30}?"
    r"\b(?:in\s+(?:place|(?:its\s+)?(?:usual|normal|typical)\s+(?:place|position|location))"
    r"|(?:properly|normally|usually|typically)\s+(?:positioned|located|situated|placed)))\b"
)
# What a normal statement is about is no finding: "The hila are normal in size and density."
NORMAL_ATTRIBUTE = re.compile(
    r"\bnormal\s+in\s+\w+(?:\s*(?:,|and|or)\s*\w+)*|\bnormal\s+(?:size|shape|density|calibre"
    r"|caliber|width|position|configuration|contour|transparency)(?:\s*(?:,|and|or)\s*\w+)*"
    r"|\b(?:for|at)\s+(?:the\s+|this\s+)?(?:patient'?s\s+)?(?:age|post-?(?:operative|surgical)\s+(?:state|status))\b"
    # the technique allowed for: "The mediastinum is not widened given AP technique."
    r"|\b(?:given|allowing\s+for|accounting\s+for|considering)\s+(?:the\s+)?(?:ap|supine|portable"
    r"|semi-?erect|bedside)\s+(?:technique|projection|positioning|film|view)\b"
    # a time: "Cardiomediastinal contours are stable in the early postoperative period."
    r"|\bin\s+the\s+(?:early\s+|immediate\s+)?post-?(?:operative|surgical)\s+(?:period|setting)\b"
    r"|\bprominent\b(?=\s+but\s+normal\s+in\s+appearance\b)"
    # "Thymus prominent, normal for age.": the size is called normal
    r"|\b(?:prominent|large|enlarged)\b(?=[^.;]*\bnormal\s+(?:finding\s+|(?:in\s+)?appearance\s+)?(?:for|at)\s+"
    r"(?:the\s+|this\s+)?(?:patient'?s\s+)?age\b)"
)
# "Lungs: clear", and "clear" left alone once "otherwise" or "essentially" is set aside.
CLEAR_LABEL = re.compile(r":\s*clear\b|^\s*clear\b")

# Sizes at the edge of normal are findings: "Heart size is top normal."
BORDERLINE = re.compile(
    r"\b(?:top|high|upper)[- ]normal\b"
    r"|\b(?:upper|top|high)\s+(?:limits?|range|end|border)\s+of\s+(?:the\s+)?normal\b"
    r"|\bborderline\b"
)

# Stability and persistence: neutral words that take the kind of what they qualify.
NO_CHANGE = re.compile(
    r"\b(?:no|without)\s+(?:(?:significant|substantial|appreciable|definite|interval|relevant"
    r"|major|gross|radiographic|further|apparent|acute|new|other|obvious|cardiopulmonary|evolutionary|notable"
    r"|intrathoracic|pulmonary)\s+){0,3}(?:changes?|dynamics|variations?|evolution)\b"
    # what only the film's appearance is compared in: "No interval change in the appearance of
    # the left lung." (comparison only; "... of the right lung nodule" keeps the nodule)
    r"(?:\s+in\s+(?:the\s+)?appearances?\s+of\s+(?:the\s+)?(?:(?:left|right|both|bilateral)\s+)?"
    r"(?:lungs?|chest|thorax|heart|mediastinum)\b)?"
    r"|\bnot\s+(?:significantly\s+|substantially\s+)?changed(?:\s+(?:significantly|substantially))?\b"
)
# Where NO_CHANGE can match at all (it is blanked before negations are read).
NO_CHANGE_WORD = re.compile(r"chang|dynamics|variation|evolution")
# "of no clinical significance" qualifies what it follows: no negation of it.
NO_SIGNIFICANCE = re.compile(r"\s+(?:\w+\s+)?(?:significance|consequence|concern)\b")
STABILITY = re.compile(
    NO_CHANGE.pattern + r"|\b(?:little|minimal|slight|minor)\s+(?:(?:interval|overall)\s+)?change\b"
    r"|\b(?:stable|stably|stationary|unchanged|unaltered|similar(?:ly)?|persist(?:s|ent|ing|ed)?|remain(?:s|ed|ing)?|again|redemonstrated"
    r"|re-demonstrated|otherwise|overall|essentially|grossly|since|from|compared|comparison)\b"
)
# Clause boundaries: negation and hedging never cross them.
CLAUSE_BREAK = re.compile(
    # "prominent but normal (in appearance) for age" is one statement: the size is called normal
    r"\b(?:but(?!\s+normal\s+(?:in\s+appearance\b|(?:in\s+\w+\s+)?(?:for|at)\s+(?:the\s+|this\s+)?"
    r"(?:patient'?s\s+)?age\b))"
    r"|however|although|though|whereas|while|except(?:\s+for)?|aside\s+from|apart\s+from"
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
    r"|(?:the\s+|an?\s+)?(?:main\s+|leading\s+|primary\s+)?differential(?:\s+diagnosis)?"
    r"|considered)\b(?=\s*(?:$|[.,;:)]|in\b|given\b|clinically\b|if\b|as\b|on\b))"
    r"|\b(?:may|might|could)\s+(?:also\s+)?be\s+present\b"
    r"|\b(?:is|are)\s+(?:likely|probably|possibly)\s+present\b|\b(?:should|must|needs?\s+to)\s+be\s+considered\W*\Z"
)
# Forward: what follows it is hedged ("Possible small effusion", "may represent edema").
HEDGE = re.compile(
    r"\b(?:possible|possibly|poss|probable|probably|prob|likely|presumed|presumably|perhaps|maybe"
    r"|(?<![\w/])s/o(?![\w/])|questionabl[ey]|question\s+of|(?:(?<=\A)|(?<=:\s))question\s+(?!answered\b)|equivocal|suspicious\s+(?:for|of)"
    r"|concerning\s+for|worrisome\s+for|suggestive\s+of|suggest(?:s|ing)?|suspect(?:ed)?|favou?r(?:s|ing)?"
    r"|possibility\s+of|versus|vs\.?|query|differential\s+(?:diagnosis\s+)?(?:includes|include"
    r"|considerations)|raises?\s+(?:the\s+)?(?:possibility|concern)|raising\s+(?:the\s+)?"
    r"(?:possibility|concern)|(?:may|might|could|can)\s+(?:also\s+)?(?:represent|reflect|be"
    r"|indicate|relate|correspond|account|signify|suggest|mean)"
    # "May have small left effusion.", "PCP could have this appearance."
    r"|(?<=\A)(?:may|might)\s+have|(?:may|might|could)\s+have\s+(?:this|that|a\s+similar)\s+appearance"
    r"|(?:can\s?not|can't|could\s+not|not)\s+(?:entirely\s+|completely\s+)?(?:exclude|rule\s+out)"
    r"|would\s+be\s+(?:consistent|compatible)\s+with|consider)\b"
)
# A query mark before a word (British "?consolidation"), not after one.
QUERY_MARK = re.compile(r"(?<![\w?])\?\s*(?=[a-z])")
VERSUS = re.compile(r"\b(?:versus|vs\.?)(?=\s)")

# Negation. Forward cues negate what follows; "not" also negates its subject.
_NOT_NEG = (
    r"(?!\s+(?:(?:yet|completely|fully|entirely|totally|significantly|substantially|only"
    r"|definitely|confidently)\s+)*(?:resolved|cleared|removed|changed|excluded|ruled|exclude"
    # a device "not in a satisfactory position" is malpositioned, a finding; "do not feed" advice
    r"|feed|use|to\s+be\s+used|in\s+(?:a\s+|an\s+|the\s+)?(?:satisfactory|appropriate|good|correct|adequate|acceptable|optimal)\s+position"
    r"|(?:centrally|optimally|correctly|satisfactorily|adequately|appropriately|well)\s+(?:positioned|placed|sited)"
    r"|rule|only|included|imaged|assessed|evaluated|assessable|evaluable|follow|respect|conform|cross|counted"
    # persistence: "Empyema not resolving - suggest CT chest."
    r"|resolving|improving|settling))"
)
NEGATION = re.compile(
    r"\bnothing(?:\s+(?:[\w-]+\s+){0,4}?(?:to\s+)?(?:suggest(?:s|ing|ive\s+of)?|indicat(?:es?|ing|ive\s+of)))?"
    r"|\b(?:no\s+longer|no(?!\.?\s*[\d#])|without|w/o|negative\s+for|free\s+of|clear\s+(?:of|from)|absence\s+of|nil|neither"
    # an absent breast shadow is a finding (a mastectomy): "Absent left breast shadow."
    r"|(?<!breast\sshadow\s)(?<!breast\sshadow\sis\s)absent(?!\s+(?:(?:left|right)\s+)?breast\b)"
    r"|nor|never|none|unlikely|not" + _NOT_NEG + r"|negative|resolution\s+of|resolved|(?:re)?absorbed"
    r"|resorbed|re-?expanded|(?<=been\s)drained"
    r"|disappear(?:ed|s)?|disappearance\s+of|(?:(?<=complete\s)|(?<=total\s))regression\s+of"
    r"|(?:(?<=completely\s)|(?<=totally\s))regressed"
    # a device taken out, in translated French: "Ablation of the pleural drain."
    r"|ablation\s+of(?=\s+(?:the\s+)?(?:[\w-]+\s+){0,2}?(?:drains?|tubes?|catheters?|lines?|picc|ports?|icc)\b)"
    r"|removal\s+of|removed|clearing\s+of|cleared(?!\s+for\b)|extubat\w*|decannulated|discontinued|ruled\s+out"
    # a device taken out: "ICC out, no re-accumulation of pneumothorax."
    r"|(?:(?<=tube\s)|(?<=tubes\s)|(?<=drain\s)|(?<=drains\s)|(?<=icc\s)|(?<=ett\s)|(?<=ngt\s)"
    r"|(?<=tubes\sare\s)|(?<=tube\sis\s)|(?<=drains\sare\s)|(?<=drain\sis\s)|(?<=taken\s)"
    r"|(?<=line\s)|(?<=catheter\s)|(?<=picc\s))out(?=\s*(?:[,;.]|\Z))"
    r"|pulled(?!\s+(?:back|to|towards?|up|down|over|across)\b)"
    r"|(?:is|are|was|were|been)\s+excluded|neg|can\s?not\s+be\s+(?:seen|identified|detected|demonstrated)"
    # "has been withdrawn." is gone; "withdrawn by 2 cm, now in the stomach" is repositioned.
    r"|withdrawn(?=\s*(?:$|[;,]|in\s+the\s+interval\b|since\b)))\b"
)
# Cues that negate their subject: "Pleural effusions are not seen", "The tube was removed".
BACKWARD = frozenset(
    "not absent none unlikely negative neg resolved removed cleared discontinued extubated cannot can "
    "pulled decannulated withdrawn absorbed reabsorbed resorbed re-expanded reexpanded disappeared "
    "disappear disappears regressed out drained "
    "no-longer".split()
)
# Partial change is persistence: "near complete resolution", "has not completely cleared".
PARTIAL = re.compile(
    r"(?:\b(?:near(?:ly)?|partial(?:ly)?|incomplete(?:ly)?|almost|near-complete|near-total|largely"
    r"|mostly|substantially|slowly|continued|ongoing|improving)\s+(?:(?:complete(?:ly)?|total(?:ly)?"
    r"|interval)\s+)?|\b(?:not|never)\s+(?:yet\s+)?(?:(?:completely|fully|entirely|totally)\s+)?)$"
)
PARTIAL_AFTER = re.compile(r"\s+(?:partially|partly|incompletely|in\s+part)\b")
# "not seen on the prior study", "not well seen on the lateral view": visibility elsewhere,
# not absence. Matched (anchored) right after "not".
VISIBILITY = re.compile(
    r"\s+(?:(?:as\s+)?well|clearly|previously|definitely|as\s+clearly)?\s*(?:seen|visuali[sz]ed"
    r"|identified|evident|present|appreciated|demonstrated|visible|apparent|detected"
    r"|delineated|defined|assessed)\b(?:\s+as\b)?(?:\s+(?:on|in|at|with)\s+(?:the\s+|this\s+"
    r"|a\s+|an\s+|any\s+)?(?:prior|previous|earlier|preceding|old|older|outside|lateral"
    r"|frontal|pa|ap|oblique|comparison|recent|initial|ct|remote|last|other|preliminary|yesterday'?s?"
    r"|pre-?(?:procedure|procedural|operative|op|insertion)"
    r"|(?:19|20)\d\d|\d{1,2}/\d{1,2}(?:/\d{2,4})?)\b|\s+(?:on|in)\s+"
    r"(?:the\s+)?(?:study|exam|examination|radiograph|film|ct|chest\s+\w+)\s+(?:of|from|dated)\b"
    r"|\s+(?:previously|before|earlier|then|at\s+that\s+time|in\s+retrospect))"
    r"|\s+(?:(?:as\s+)?well|previously|as\s+clearly)\s+(?:seen|visuali[sz]ed|identified"
    r"|evident|present|appreciated|demonstrated|visible|delineated|defined)\b"
    # out of the film: "Nasogastric tube tip is not visualised within the imaged field."
    r"|\s+(?:seen|visuali[sz]ed|visible|included)\s+(?:with)?in\s+(?:the\s+)?(?:imaged|visible|included)\s+field"
    # "... not present on <DATE>.": a study named by a placeholder (taken out)
    r"|\s+(?:seen|present|visible|identified)\s+(?:on|in|at)\s*(?=[.,;]|\Z)"
    # Reported elsewhere: "was not mentioned on the preliminary read".
    r"|\s+(?:(?:previously|initially|specifically)\s+)?(?:mentioned|described|reported"
    r"|commented\s+(?:up)?on)\b"
    # the verb hidden by de-identification: "a 1.5 cm nodule ..., not XXXX on prior exam"
    r"|\s+(?:on|in)\s+(?:the\s+)?(?:prior|previous|earlier)\s+(?:exam|study|film|radiograph)s?\b"
)
# A negation's scope ends where a positive statement starts after a comma or "and".
SCOPE_END = re.compile(
    r"\bwith\s+(?=(?:only\s+)?(?:an?\s+|the\s+)?(?:new|increased|increasing|worsening|worsened|developing|enlarging|residual|slight"
    r"|slightly|improved|improving|improvement|decreased|decreasing|mildly|moderately|markedly|minimal"
    r"|minor|some"
    r"|small|tiny|trace|mild|moderate|large|persistent|drains?|chest\s+(?:drain|tube)|tubes?|catheter"
    r"|pigtail)\b)"
    # a device beside what a change took away: "... has resolved with the intercostal drain in situ."
    r"|\bwith\s+(?=(?:an?\s+|the\s+|its\s+)?(?:[\w-]+\s+){1,2}?(?:drains?|tubes?|catheters?|picc)\b)"
    r"|\b(?:and)\s+(?=(?:a|an|the|this|these|there|its|right|left|bilateral|bibasilar|mild"
    r"|mildly|moderate|moderately|severe"
    r"|severely|small|tiny|trace|minimal|minor|stable|persistent|unchanged|increased|increasing"
    r"|decreased|decreasing|improved|improving|worsening|worsened|chronic|old|healed|\d)\b)"
    # "... had cleared, leaving small bilateral effusions."
    r"|,\s*(?=leaving\b)"
    r"|,\s*(?=(?:a|an|the|this|these|there|its|mild|mildly|moderate|moderately|severe|severely"
    r"|small|tiny|trace|minimal|minor|stable|persistent|unchanged|increased|increasing|decreased"
    r"|decreasing|improved|improving|worsening|worsened|chronic|old|healed|which|who|\d"
    # what a past disease or operation left: "No acute abnormality, sequelae of prior granulomatous
    # disease."
    r"|sequelae|stigmata|calcified|degenerative|postoperative|post-?surgical)\b)"
)
# After a change word a list of devices that ends the sentence is all gone: "Interval removal
# of the mediastinal drains and left pleural tube." ("and left ..." ends other scopes).
_AND_LEAD = r"|\b(?:and)\s+(?="
_DEVICE_ITEM = (r"(?:the\s+|a\s+)?(?:left\s+|right\s+)?(?:[\w-]+\s+){0,2}?(?:tubes?|drains?|catheters?|lines?"
                r"|wires?|sheaths?)")
SCOPE_END_CHANGE = re.compile(SCOPE_END.pattern.replace(
    _AND_LEAD, r"|\b(?:and)\s+(?!(?:" + _DEVICE_ITEM + r"(?:\s*,\s*|\s+and\s+))*" + _DEVICE_ITEM
    + r"\W*$)(?=", 1))
# Leading and trailing words a grounded span does without.
CONNECTIVE = re.compile(
    r"(?:[\s,;:.\-]|\b(?:and|or|but|however|although|though|whereas|while|with"
    r"|except(?:\s+for)?|aside\s+from|apart\s+from|other\s+than|besides|the\s+exception\s+of"
    r"|which)\b)+"
)
