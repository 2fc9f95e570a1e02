"""Cues that make a clause "other", nothing on the image to localize: communication,
recommendation, request and history lines, technique and its limits, comparison. Lower-case
text with placeholders blanked, as for the rest of the lexicon (text/lexicon.py re-exports the
patterns it has always offered)."""

from __future__ import annotations

import re

__all__ = [
    "COMMUNICATION",
    "COMPARING",
    "COMPARISON_LEAD",
    "CONDITIONAL",
    "DIAGNOSIS",
    "EXAM_NAME",
    "FITNESS",
    "HYPOTHETICAL",
    "LIMITATION",
    "LIMITED_FOR",
    "NO_PRIOR",
    "OFFERED",
    "OFFERED_BEFORE",
    "ADVISED_ABOUT",
    "OTHER_LABEL",
    "PROCEDURES",
    "PURPOSE",
    "RECOMMENDATION",
    "REFERENCE",
    "REQUEST",
    "SEEN_ON",
    "TECHNIQUE_OBSCURING",
    "TESTS",
    "TO_ASSESS",
    "URGENCY",
    "VIEW_SIDE",
]

# Cues that make a clause "other" (nothing on the image): communication, recommendation,
# request, history and technique. A finding named before one keeps its own part.

# A fitness statement of a medical examination, or a disclaimer: "Fit from a radiological standpoint.", "No
# contraindication to employment." (about the person, not the film).
FITNESS = re.compile(
    r"\b(?:un)?fit\s+(?:for|from|to)\b|\bunfit\b|\b(?:radiological(?:ly)?|radiographic(?:ally)?)\s+"
    r"(?:standpoint|point\s+of\s+view)\b|\bcontra-?indications?\s+(?:to|for|of)\b|\bdisqualif\w*"
    # or a disclaimer: "This report does not replace a clinical assessment."
    r"|\b(?:does|do|can)\s?not\s+replace\b|\bnot\s+(?:a\s+)?(?:diagnostic|final\s+report)\b"
    # "NOT FOR PRIMARY DIAGNOSIS", "does not change management", "not part of the medical record"
    r"|\bnot\s+for\s+(?:primary\s+|clinical\s+)?diagnos\w*|\b(?:does|do|did|will|would)\s+not\s+(?:change|alter"
    r"|affect)\s+(?:the\s+|patient\s+|clinical\s+)?management\b|\bnot\s+part\s+of\s+the\s+(?:medical\s+)?record\b"
    # "dictated using voice recognition software; minor errors may be present"
    r"|\b(?:voice|speech)[- ]recognition\b|\b(?:transcription|typographical|dictation)\s+errors?\b"
    r"|\berrors\s+may\s+(?:be\s+present|occur|exist)\b"
)
COMMUNICATION = re.compile(
    r"\b(?:discussed|d/w|communicated|notified|paged|relayed|conveyed|informed|telephoned|phoned|consulted"
    r"|emailed|faxed|read[- ]back|acknowledged|were\s+called|was\s+called|called\s+to"
    r"|called\s+in|by\s+telephone|by\s+phone|via\s+telephone|on\s+the\s+telephone"
    r"|at\s+the\s+time\s+of\s+(?:dictation|interpretation|this\s+report)"
    r"|preliminary\s+(?:\w+\s+)?(?:report|read|reading|interpretation)|wet\s+read"
    r"|(?:was|were|been)\s+(?:provided|dictated|reviewed|signed|issued)\s+by|reviewed\s+with"
    r"|agree[sd]?\s+with|concur(?:s|red)?\s+with|dict(?:ated)?\.?\s+by|page\s+\d+\s+of\s+\d+"
    r"|(?:outside|original|external)\s+(?:report|interpretation|read(?:ing)?)|posted\s+to|dashboard"
    r"|no\s+(?:\w+\s+)?discrepanc(?:y|ies)|tumou?r\s+board|multi-?disciplinary\s+(?:team|meeting|conference)"
    r"|mdt)\b"
)
RECOMMENDATION = re.compile(
    r"\b(?:recommend\w*|recs?\b|advis\w*|follow[- ]?ups?|followup|f/u|further\s+(?:evaluation|assessment"
    r"|characteri[sz]ation|imaging|workup|work-up)|correlat(?:e|ed|ion)\s+(?:clinically|with"
    r"|for|is|advised|recommended)|clinical(?:ly)?\s+correlat\w*|correlate\b|please|kindly"
    r"|(?:could|can|may|might|should)\s+be\s+(?:obtained|performed|considered|helpful)"
    r"|(?:could|can|may|might|should)\s+be\s+(?:advanced|withdrawn|retracted|pulled\s+back|repositioned)"
    r"|(?:may|might|would|could)\s+be\s+(?:helpful|useful|of\s+value)|(?:may|might|would|could|will)\s+help\s+to\b"
    r"|if\s+clinically\s+(?:indicated|warranted)|as\s+clinically\s+indicated"
    r"|(?:suggest|consider)\s+(?:a\s+|an\s+)?(?:repeat|follow|further|dedicated|ct|cta|mri|pet"
    r"|chest|cxr|radiograph|imaging|short|clinical|correlation|comparison|ultrasound|us|serial"
    r"|obtaining|decubitus|lateral|pa|expiratory|inspiratory|advancing|withdrawing"
    r"|repositioning|retracting)"
    # An imperative at the start of a clause: "...; suggest advancing by 2 cm."
    r"|\A\W*(?:would\s+)?(?:suggest|consider)\b(?!\s+(?:that|the\s+(?:presence|possibility)))"
    # (not one that was taken: "A repeat film on day 4 showed ...")
    r"|repeat\s+(?:radiograph|film|cxr|imaging|study|chest|exam|examination|x-ray)\w*"
    r"(?![^.;]*\b(?:showed|shows|demonstrated|revealed|confirmed)\b)"
    r"|further\s+action|intervention\s+(?:is\s+)?required"
    r"|(?:ct|cta|mri|pet|ultrasound|cxr|radiograph|imaging|follow-up|repeat|review|bronchoscopy"
    r"|consultation|referral|biopsy|scan)\s+(?:\w+\s+){0,3}?"
    r"(?:is\s+|are\s+)?(?:suggested|arranged|booked|planned)"
    r"|(?:examination|evaluation|assessment)\s+(?:is\s+)?suggested|for\s+(?:\w+\s+)?correlation)"
)
REQUEST = re.compile(
    r"\A\W*(?:(?:the\s+)?(?:patient|pt|worker|applicant|employee|child|infant)\s+is\s+an?\s+)?"
    r"(?:\d+\s*)?-?\s*(?:year|yr|month|week|day)s?[- ]old\b"
    # age and sex first ("22M with sickle cell disease, ..."), an occupation ("Ex-asbestos miner
    # from the Northern Cape.")
    r"|\A\W*\d{1,3}\s?[mf]\b|\A\W*(?:ex-?|former\s+|retired\s+)(?:[\w-]+\s+){0,2}?(?:miner|worker|smoker"
    r"|welder|sandblaster|labou?rer|builder|driller)\b"
    r"|\A\W*\d+\s*y/?o\b"
    r"|\A\W*(?:evaluate|eval|assess|rule\s+out|r/o|query\s+for|reason\s+for|history\s+of|h/o"
    r"|hx\s+of|clinical\s+(?:details|notes|information|info|data|history|hx|indication|question|query)"
    r"|indications?|(?:gp\s+|ed\s+|clinical\s+)?(?:referral|requisition)|history|hx|reason"
    r")\b(?!\s+(?:answered|of))"
    # the request's question as a label; "Question right middle lobe infiltrate." in an
    # impression is the reader's hedge (lexicon.HEDGE)
    r"|\A\W*question\s*[:?-]"
    # A history label or a history line's lead: "Occupation: coal miner.", "DOL 3, on CPAP.",
    # "POD 2, chest tubes out.", "Pre-op CXR prior to valve repair.", "Term infant, grunting."
    r"|\A\W*(?:clinical|occupation(?:al\s+history)?|purpose|request|advice|background"
    r"|presenting\s+complaint|investigation|exam(?:ination)?|procedure)\s*:"
    r"|\A\W*(?:(?:symptomatic\s+)?presumptive\b|k/c/o|kco|known\s+case\s+of|background\s+of|pmh|refer(?:red)?\s+to|(?:medically\s+)?cleared\s+for)\b|\A\W*(?:dol|pod|day)\s*#?\d+\b(?!\s*:)"
    r"|\A\W*pre-?op(?:erative)?\s*(?:[,:]|(?:cxr|film|x-ray|radiograph|chest|assessment"
    r"|evaluation|work-?up)\s*(?:,|\s(?:prior|for|before|ahead)))"
    r"|\A\W*post-?op(?:erative)?\s+day\b|\A\W*(?:term|preterm|premature|ex-?\d+\s*(?:weeks?|wk))"
    r"\s+(?:\w+\s+)?(?:infant|baby|neonate|newborn|boy|girl)\b"
    # An instruction: "Do not use; please reposition and repeat the film."
    r"|\A\W*(?:do\s+not|don't)\s+(?:use|feed)\b"
    # A film after a procedure, named as its exam: "CHEST, 1 VIEW: Post left thoracentesis."
    r"|\A\W*(?:cxr|chest|x-ray|xray|film|radiograph)\b[^:]{0,20}:\s*(?:post|after|following|s/p)\s+"
    r"(?:left\s+|right\s+)?(?:thoracentesis|thoracocentesis|pleural\s+tap|biopsy|aspiration|bronchoscopy"
    r"|procedure)\W*\Z"
    # A film after a procedure, or a device's check, as the whole request: "Post pleural
    # aspiration.", "ICU - post extubation.", "NGT position check." ("Post left mastectomy."
    # names what the surgery left: a finding)
    r"|\A\W*(?:[a-z]+\s*-\s*)?post[- ](?:[\w-]+\s+){0,3}?(?:insertion|aspiration|extubation|intubation"
    r"|drainage|thoracentesis|thoracocentesis|tap|biopsy|removal|placement|cannulation|bronchoscopy)\W*\Z"
    r"|\A\W*[\w/-]+\s+(?:(?:position|insertion|placement|tip)\s+)?check\b(?:\s*-[^.;:]*)?\W*\Z"
    # The clinical question after the exam's name, British style: "CXR PA: ?infection".
    r"|\A\W*(?:cxr|chest|x-ray|xray|film|radiograph)\b[^:?]{0,20}:\s*\?"
)
# A label that makes a whole sentence other, whatever its clauses say: "Hx: 2 yo, choking
# episode while eating, ?FB.", "Rec: CT not available; repeat film in 4 weeks."
OTHER_LABEL = re.compile(
    r"\A\W*(?:hx|history|clinical\s+(?:history|details|data|information|info|indication|notes"
    r"|question)|indications?|reason\s+for\s+(?:exam|examination|study|request|referral)|recs?"
    r"|recommendations?|plan|advice|(?:referral|referring|provisional|working|clinical)\s+diagnosis"
    # the exam's technique and the UK's "CD:" (clinical details)
    r"|techniques?|cd|c/d|comparisons?"
    # identifier lines: "Name: ___   IP No: ___", "Applicant: <NAME>   Case no.: ___"
    r"|(?:patient\s+)?name|applicant|case\s+no\.?|ip\s+no\.?|(?:employee|worker)\s+no\.?|dob|mrn|pt\.?\s+ref"
    r"|diagnosis\s+(?:at|on)\s+referral|notification|(?:primary\s+|secondary\s+)?diagnostic\s+code)\s*:"
    # a label alone on its line: "CONCLUSIÓN:", "IMPRESSION (attending-approved):", or answered
    # by a pointer elsewhere: "Lines/tubes: see above."
    r"|\A[^:.;?!]{1,60}:\s*(?:(?:see|as)\s+(?:above|below|findings|impression)\W*)?\Z"
)
# Why the film was taken, anywhere in a clause: "CXR requested to check ETT position.",
# "Chest pain, rule out pneumonia.", "Pt has hx of CHF."
PURPOSE = re.compile(
    r"\b(?:requested|ordered|performed|obtained|done|taken)\s+(?:to|for)\s+(?:check|assess"
    r"|evaluate|confirm|exclude|rule\s+out|look|document|verify)\b"
    r"|(?:\A|,)\s*(?:rule\s+out|r/o|eval(?:uate)?\s+for|assess\s+for)\b|\b(?:hx|history)\s+of\b"
    r"|\bfor\s+(?:\w+\s+)?screening\b|\A\W*(?:[\w-]+\s+){0,3}?screening\W*\Z"  # "Tuberculosis screening."
    r"|\b\d{1,3}\s*(?:(?:y/?o?|yrs?|years?)\s*)?/\s*[mf]\b"  # age and sex: "72/F", "54 y/o / M", "22 yrs / M"
    r"|\b\d{1,3}\s*(?:y/o|yo|yrs?)\s*,?\s*(?:[mf]|male|female|man|woman|boy|girl)\b"
    # the exam's purpose: "CXR to confirm NG tube position prior to feeding."
    r"|\A\W*(?:[\w-]+\s+){0,2}?(?:cxr|x-?ray|radiograph|film)\s+(?:is\s+)?(?:requested\s+)?(?:to|for)\s+"
    r"(?:check|assess|evaluate|confirm|exclude|rule\s+out|document|verify)\b"
)
# A diagnosis of what the image shows: administrative words in it ("Findings likely represent
# transient tachypnoea of the newborn.") are part of the diagnosis, not a history line.
DIAGNOSIS = re.compile(r"\b(?:represents?|representing|consistent\s+with|in\s+keeping\s+with"
                       r"|compatible\s+with|suggestive\s+of|likely|probably)\b")
# A pointer to another part of the report: "Impression: As above.", "See findings."
REFERENCE = re.compile(
    r"\bas\s+(?:above|below|described|detailed|outlined)\b|\bsee\s+(?:the\s+)?(?:above|below"
    r"|impression|findings|report|comment|addendum|previous|prior|separate)\b"
)
# Where an observation was made or compared ("on the lateral view", "since the prior film"):
# the exam named in such a phrase is not what the clause is about.
SEEN_ON = re.compile(
    r"\b(?:on|in|at|over|since|from|than|to|with|versus|vs)\s+(?:[\w'/-]+\s+){0,3}?(?:radiographs?"
    r"|x-rays?|xrays?|cxrs?|films?|views?|images?|exams?|examinations?|study|studies"
    r"|projections?)\b"
)
# The side of a view is no place on the image: "Bilateral decubitus views were obtained."
VIEW_SIDE = re.compile(r"\b(?:right|left|bilateral|both)\s+(?=(?:lateral\s+|anterior\s+|posterior\s+)?"
                       r"(?:decubitus|oblique|rib\s+series)\b)")
# A clause that starts as a comparison: "Compared with the previous film from ___ ...".
COMPARING = re.compile(r"\A\W*(?:compared?|comparing|comparative|comparison|in\s+comparison|cf)\b")
# The exam's name: a phrase ending in an exam word with no verb or preposition in it ("Post
# line insertion film.", "Restaging chest radiograph."); "Nodule on the lateral view" is none.
EXAM_NAME = re.compile(
    r"\A(?![^,;]*\b(?:on|in|at|of|with|from|by|over|within|since|than|to|into|is|are|was|were"
    r"|has|have|shows?|seen|projects?|projecting|noted)\b)[^,;]*\b(?:film|radiograph|x-ray|xray"
    r"|cxr|view|views|study|exam|examination|projection|series|pa|ap)\Z"
    # an exam title of the MIMIC kind, "port" for portable: "CHEST PORT. LINE PLACEMENT"
    r"|\A\W*chest\s+port\b[\s.]*(?:(?:line|tube|line/tube)\s+(?:placement|plcmt)\W*)?\Z"
)
LIMITATION = re.compile(
    r"\b(?:limit(?:ed|ing|ation|ations)|(?<!normal\s)limits(?!\s+of\s+normal)|suboptimal|degraded|underpenetrated"
    r"|overpenetrated|lordotic|rotat(?:ed|ion)|motion|body\s+habitus|positioning|poorly\s+inspired"
    r"|not\s+(?:well|adequately|fully)\s+inspired"
    r"|(?:under|over)-?expos(?:ed|ure)|(?:film|image)\s+quality|magnif(?:y|ies|ied|ication)|blurr(?:ed|ing)"
    r"|(?:scapula(?:e|s|r)?|chin|mandible|jaw)\b[^,;]*\b(?:overl(?:ie|ies|ying|ap)|project|obscur)"
    r"|not\s+(?:(?:fully|entirely|well)\s+)?(?:included|imaged|assessed|evaluated)"
    r"|(?:clipped|partially|partly)\s+off\s+(?:the|this)\s+(?:film|image|radiograph)"
    r"|partially\s+(?:imaged|excluded|included|visualized|obscured|obscuring)|excluded\s+from|cut\s+off"
    r"|(?:cannot|can\s?not|could\s+not|difficult\s+to)\s+(?:be\s+)?(?:\w+ly\s+)?(?:assess|evaluat|determin)\w*"
    r"|field\s+of\s+view|obscured\s+by\s+(?:the\s+)?(?:overlying|patient|soft|body|arms?"
    r"|motion|external|monitoring|breast))\b"
)
# What a technique may hide is not asserted: "small effusions may be missed on a supine film".
HYPOTHETICAL = re.compile(r"\b(?:may|might|could|can|would)\s+(?:not\s+)?(?:be\s+)?(?:\w+ly\s+)?(?:missed"
                          r"|underestimated|overestimated|exaggerated|occult|inapparent|expected"
                          r"|under-?called|over-?called)\b"
                          r"|\b(?:may|might|could|can|would)"
                          r"\s+not\s+be\s+(?:appreciated|seen|detected|visible|apparent|evident|visuali[sz]ed|identified"
                          r"|demonstrated)\b"
                          # a test's sensitivity: "radiographs are insensitive for nondisplaced
                          # fractures", "CT would be more sensitive for small metastases."
                          r"|\b(?:insensitive|(?:more|less|not|very|highly|quite)\s+sensitive)(?:\s+(?:for|to|in)\b|\W*\Z)"
                          # what the method shows poorly: "... are not well evaluated on chest radiography"
                          r"|\bnot\s+(?:well\s+|always\s+|reliably\s+)?(?:evaluated|assessed|seen|visible"
                          r"|visuali[sz]ed|demonstrated|detected)\s+(?:on|by)\s+(?:chest\s+)?(?:radiography"
                          r"|radiographs|x-?rays?|plain\s+(?:films?|radiographs?))\b"
                          # what this film leaves out: "The jejunostomy tube is not included on this
                          # radiograph."
                          r"|\bnot\s+(?:included|imaged|captured)\s+(?:on|in)\s+(?:this|the)\s+(?:radiograph"
                          r"|film|study|image|exam)\b"
                          # what cannot be judged and why: "Heart size cannot be assessed due to
                          # obscured left heart border." (the cause is described elsewhere)
                          # or on what kind of film: "Small effusions cannot be assessed on a supine film."
                          r"|\b(?:(?:cannot|can\s?not|could\s+not)\s+be\s+(?:\w+ly\s+)?(?:assessed|evaluated)"
                          r"|(?:are|is)\s+(?:difficult|hard)\s+to\s+(?:exclude|assess|evaluate))\s+on\s+(?:a|an|this|the)\b"
                          r"|\b(?:cannot|can\s?not|could\s+not|difficult\s+to|unable\s+to)\s+(?:be\s+)?"
                          r"(?:\w+ly\s+)?(?:assess|evaluat)\w*\s+(?:due\s+to|given|because\s+of|owing\s+to"
                          r"|secondary\s+to)\b"
                          # the exam as the subject: "CXR cannot exclude aortic dissection"
                          r"|\b(?:cxr|radiographs?|x-?rays?|plain\s+films?|(?:this|the)\s+(?:study|exam"
                          r"|examination|film|radiograph))\s+(?:alone\s+)?(?:cannot|can\s?not|does\s+not"
                          r"|will\s+not)\s+(?:\w+ly\s+)?(?:exclude|rule\s+out)\b"
                          # "... though a small anterior pneumothorax would be difficult to detect"
                          r"|\b(?:would|may|might|could|can)\s+be\s+(?:difficult|hard)\s+to\s+(?:detect|see"
                          r"|identify|appreciate)\b"
                          # "Evaluation for pneumothorax is limited by supine technique."
                          r"|\b(?:evaluation|assessment|detection|sensitivity)\s+(?:for|of)\s+(?:[\w-]+\s+){0,4}?"
                          r"(?:is|are|was|remains)\s+(?:\w+\s+)?limited\b")
# What a limitation keeps from being judged: "..., limiting assessment for effusion."
LIMITED_FOR = re.compile(r"\blimit(?:s|ing|ed)?\s+(?:the\s+)?(?:assessment|evaluation|detection)"
                         r"\s+(?:for|of)\b[^,;]*")
# What a limitation names that is no finding: "obscured by overlying soft tissue".
# (up to a clause of its own: "... by overlying soft tissue and a left effusion is not excluded")
TECHNIQUE_OBSCURING = re.compile(r"\bobscured\s+by\s+(?:the\s+)?(?:overlying|patient|soft|body"
                                 r"|arms?|motion|external|monitoring|breast)\b(?:(?!\s+and\s+(?:an?|the)\s)[^,;])*"
                                 r"|\boverlying\s+(?:monitoring|ecg|ekg|external)\b[^,;]*"
                                 r"|\b(?:partially|partly)\s+obscured\s*\Z"
                                 # "Trauma board is partially obscuring the lower chest."
                                 r"|\b(?:partially|partly)\s+obscuring\b[^,;]*")
COMPARISON_LEAD = re.compile(
    # up to its comma, or to the verb that states what changed ("Comparison with yesterday's
    # film shows increased ... shadowing")
    r"\A\W*(?:(?:as|when)\s+)?(?:compared?|comparing|comparison|in\s+comparison|relative)\s+(?:to|with)"
    r"\b(?:[^,;:]*?\b(?:shows?|demonstrates?|reveals?)\b|[^,;:]*[,:])"
    # a read's label: "Resident preliminary interpretation: Mild pulmonary vascular congestion."
    r"|\A\W*(?:(?:changes?|discrepanc(?:y|ies)|differences?)\s+(?:from|to|with)\s+(?:the\s+)?)?"
    r"(?:(?:resident|attending|radiology)(?:'s)?\s+)?(?:preliminary|prelim|wet|final)\s+(?:report|read"
    r"|reading|interpretation|impression)[^:;]{0,40}(?<!\d):"
    # a limitation granted before a statement: "Within these limitations, the lungs are clear."
    # a limited exam before what it still shows: "Limited exam without acute findings."
    r"|\A\W*(?:(?:technically|somewhat|slightly|mildly|very)\s+)?(?:limited|suboptimal)\s+(?:portable\s+"
    r"|supine\s+|ap\s+|bedside\s+)?(?:exam(?:ination)?|study|film|radiograph|evaluation)\s*,?\s*"
    r"(?=(?:without|with\s+no|but\s+no|no|showing\s+no)\b)"
    r"|\A\W*(?:within|given|despite|allowing\s+for)\s+(?:the(?:se|ir)?\s+|this\s+)?(?:\w+\s+)?"
    r"(?:limitations?|limits|constraints)\s*,|\A\W*since\s+(?:the\s+)?(?:prior|previous|last|___)\b[^,;]*,"
)
NO_PRIOR = re.compile(
    r"\bno\s+(?:prior|previous|old|outside|comparison)\s+(?:\w+\s+){0,2}?(?:stud|exam|film"
    r"|radiograph|imag|chest|for\s+comparison|available|comparison)"
    r"|\b(?:comparisons?|prior|previous|priors)\s*:?\s*(?:none|not\s+available|n/a|nil)\b"
    r"|\b(?:prior|previous|old|outside|comparison)\s+(?:\w+\s+){0,3}?(?:is|are|was|were)\s+not"
    r"\s+available|\bnot\s+available\s+for\s+comparison"
    r"|\b(?:prior|previous|old|outside|comparative)\s+(?:[\w-]+\s+){0,4}?not\s+available\b"
)

# What advice is about, read by the assertion: "If symptoms persist, CT is advised." (a
# condition first), "Consider TB." (a diagnosis offered: a hedged finding) against "Consider
# CT." or "Consider US chest to assess for loculation." (advice), and "Sputum samples for AFB
# ... are advised" (the clause starts with a test).
CONDITIONAL = re.compile(r"\W*(?:[a-z]+\s*:\s*)?(?:if|when|should|unless|once|in\s+case"  # after a label
                         # a guideline's advice: "Per Fleischner Society guidelines, follow-up CT
                         # ...", "For a solid nodule of this size ..., Fleischner guidelines ..."
                         r"|(?:per|according\s+to)\b(?=[^,;]*\bguidelines?\b)|for\s+an?\s+[^,;]*\bof\s+this\s+size\b)\b")
OFFERED = re.compile(r"\W*(?:would\s+)?(?:suggest|consider)")
OFFERED_BEFORE = re.compile(r"(?:should|must|needs?\s+to)\s+be\s+considered\W*\Z")  # the diagnosis before it
TO_ASSESS = re.compile(r"\bto\s+(?:assess|evaluate|exclude|rule\s+out|look|check)\b"
                       r"|\bif\s+(?:there\s+is\s+)?(?:\w+\s+)?(?:suspicion|concern)\b"
                       # a test suggested, not a diagnosis: "Suggest sputum for AFB and discussion ..."
                       r"|(?:(?<=suggest\s)|(?<=consider\s))(?:sputum|samples?|bronchoscopy|biopsy|referral"
                       r"|discussion|review|ct|hrct|cta)\b")
# Words that only say how or by whom a test is wanted: "Urgent surgical consultation advised."
URGENCY = frozenset("urgent urgently early prompt immediate formal specialist surgical medical "
                    "paediatric pediatric "
                    "respiratory thoracic cardiothoracic chest".split())
# What advice is about, named as present: "Recommend CT for further evaluation of the left
# hilar fullness." (the fullness is on the film)
ADVISED_ABOUT = re.compile(r"\b(?:recommend\w*|advis\w*|suggest\w*)\b[^,;]*?\bfor\s+(?:further\s+|better\s+)?"
                           r"(?:evaluation|assessment|characteri[sz]ation|work-?up)\s+of\s+(?:the|this|these)\s+")
PROCEDURES = frozenset("placement insertion drainage repositioning aspiration thoracentesis".split())
TESTS = frozenset("sputum samples sample referral biopsy bronchoscopy consultation review ct cta "
                  "mri pet ultrasound us echocardiography echo spirometry discussion surveillance "
                  "monitoring".split())
