"""The trigger words of the cue patterns: a sentence's words are collected once, and a pattern
group runs only on sentences that have one of its trigger words (tests check that every match
in the corpus has one)."""

from __future__ import annotations

import re

from lesionloc_runtime.text.vocabulary import words as _words

__all__ = ["TRIGGERS", "triggered"]

TRIGGERS: dict[str, frozenset[str]] = {
    name: _words(words) for name, words in {
        "prior": "prior previous old outside comparison",
        "communication": "discussed d communicated notified paged relayed conveyed informed consulted "
                         "telephoned phoned emailed faxed read acknowledged called telephone "
                         "phone time preliminary wet provided dictated reviewed signed issued "
                         "agree agrees agreed outside original external concur concurs concurred "
                         "dict page posted dashboard discrepancy discrepancies tumor tumour board "
                         "multidisciplinary multi mdt",
        "recommendation": "recommend recommended recommends recommending recommendation rec recs f "
                          "recommendations advise advised advises advising advisable advisory "
                          "advice follow followup followups further correlate correlated "
                          "correlation clinical clinically please kindly obtained performed "
                          "considered helpful help useful value suggest consider repeat suggested "
                          "arranged booked planned action intervention advanced withdrawn retracted "
                          "repositioned",
        "limitation": "limited limiting limitation limitations limits suboptimal degraded "
                      "underpenetrated overpenetrated lordotic rotated rotation motion habitus "
                      "positioning included imaged assessed evaluated partially excluded assess "
                      "assessment evaluate evaluation evaluating assessing field obscured "
                      "missed underestimated overestimated exaggerated expected occult inapparent "
                      "appreciated seen "
                      "detected visible apparent visualized visualised identified demonstrated "
                      "underexposed overexposed under over exposed exposure quality "
                      "magnify magnifies magnified "
                      "magnification blurred blurring obscured scapulae scapula scapular scapulas "
                      "chin mandible jaw determined determine called undercalled overcalled inspired "
                      "evident sensitive insensitive cut difficult hard exclude out clipped",
        "hedge_back": "excluded exclude ruled rule possible likely probable suspected questioned "
                      "favored favoured consideration possibility considered present differential",
        "negation": "no not without w negative free clear absence absent nil neither nor never "
                    "none unlikely resolution resolved removal removed clearing cleared "
                    "extubated extubation extubate extubating discontinued ruled excluded pulled "
                    "neg withdrawn absorbed expanded reexpanded disappeared disappearance longer out "
                    "decannulated cannot can regression disappear disappears regressed reabsorbed drained "
                    "resorbed ablation nothing",
        "stability": "evolution "
                     "change changes changed stable stably stationary unchanged unaltered similar similarly "
                     "persist persists persistent persisting persisted remain remains remained "
                     "remaining again redemonstrated demonstrated otherwise overall essentially "
                     "grossly since from compared comparison dynamics variation variations",
        "normal": "normal normally nml nl unremarkable wnl nad intact preserved sharp midline central "
                  "free smooth fine healthy middle centred centered ventilated open natural axis "
                  "average "
                  "symmetric symmetrical within clear expanded aerated inflated defined "
                  "delineated demarcated outlined than under below place positioned located situated placed "
                  "usual transparent structural satisfactory vascular median transparency center "
                  "centre integrity contour contours good ctr cti cardiothoracic ok okay n look looks "
                  "centrally equally evenly symmetrically fully properly adequately normally norm clr "
                  "adequate aeration ventilation expansion inflation preserved",
        "hedge": "possible possibly poss probable probably prob likely presumed presumably perhaps maybe "
                 "questionable questionably question equivocal suspicious concerning worrisome "
                 "suggestive suggest suggests suggesting suspect suspected possibility versus vs "
                 "query differential raise raises raising may might could can cannot exclude "
                 "rule not consider would favour favor favours favors favouring favoring o",
        "borderline": "top high upper borderline",
        "fitness": "fit unfit standpoint view contraindication contraindications contra replace "
                   "disqualifying disqualify disqualified disqualification diagnostic final "
                   "diagnosis management record recognition errors error",
        "request": "requested ordered performed obtained done taken rule r eval evaluate assess "
                   "hx history f m yo yr yrs male female man woman boy girl screening check confirm "
                   "verify document",
    }.items()
}
_TOKEN = re.compile(r"[a-z]+")


def triggered(text: str) -> frozenset[str]:
    """The pattern groups that can match somewhere in `text` (lower case)."""
    tokens = frozenset(_TOKEN.findall(text))
    return frozenset(name for name, words in TRIGGERS.items() if not words.isdisjoint(tokens))
