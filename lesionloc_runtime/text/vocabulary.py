"""The word classes of report assertion: words with no content of their own, exam and
administrative words, generic and anatomical words. Lower case; docs/reports.md says how each
class decides a clause's kind."""

from __future__ import annotations

__all__ = [
    "ADMIN",
    "ANATOMY",
    "CHANGE_MODIFIER",
    "DESCRIPTOR",
    "EXAM",
    "EXAM_LABELS",
    "EXAM_SUBJECT",
    "FILLER",
    "GENERIC",
    "KNOWN",
    "LOCATION",
    "OPEN_END",
    "SYMPTOMS",
    "words",
]


def words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Words that carry nothing of their own: articles, copulas, prepositions, report verbs.
FILLER = words(
    "the a an is are was were be been being am there here of in on at to by for from as and or "
    "nor with within this that these those it its their has have had again also now still noted "
    "note seen identified demonstrated demonstrates present visualized visualised appreciated "
    "evident shown shows show showing visible apparent observed detected which who than then just very "
    "evidence sign signs feature features any some overall redemonstrated re-demonstrated status "
    "post s/p since when both appears appear appearing seems interval previously currently "
    "through demonstrate reveal reveals revealed display displays per i we you he she they my see "
    "sees saw our his her period allowing allowance following could would"
)
# Exam names, views, technique, comparison and time words: a clause made only of these (and
# filler) has nothing on the image to localize.
EXAM = words(
    "fluorography fluorogram "
    "v vw vws wk wks chest thorax appearance appearances radiograph radiographs radiography x-ray "
    "xray x ray rays cxr film films view views image images imaging exam exams examination "
    "examinations study studies pa ap lateral lat frontal portable upright semi-upright "
    "semiupright semi erect supine decubitus oblique single one two three four mobile bedside "
    "projection projections obtained performed provided submitted taken acquired available "
    "comparison comparisons compared compare prior previous earlier recent recently most dated date none "
    "made today today's yesterday morning evening night hours hour hrs am pm a.m p.m time ct cta "
    "mri pet ultrasound correlation reviewed review patient position technique rotated rotation "
    "motion lordotic positioning underpenetrated overpenetrated penetrated limited suboptimal "
    "degraded quality routine interval preliminary final report reports version dictation "
    "included inspiratory same day days week weeks month months year years ago minutes earlier "
    "expiratory radiologic radiological xr erect semi-erect standing done exposure outside external"
)
# What a "no ... X" is about when X is no specific finding: a global normal statement.
GENERIC = words(
    "acute active significant new definite definitive other evident visible radiographic "
    "radiographically cardiopulmonary cardiac pulmonary intrathoracic thoracic chest osseous bony "
    "skeletal bone lung lungs process processes abnormality abnormalities abnormal disease "
    "diseases findings finding pathology change changes interval gross obvious major appreciable "
    "substantial focal cardiothoracic intra-thoracic abnl abn dz cardiopulm alteration alterations "
    "pleuropulmonary pathological pathologic sinister remarkable fresh peculiarities peculiarity "
    "anomaly anomalies particularity particularities organs remarks remark injury injuries traumatic "
    "superimposed cardiorespiratory source"
)
# Anatomy and location: "Stable mediastinal contours." says nothing abnormal.
ANATOMY = words(
    "heart cardiac cardio cardiomediastinal mediastinal mediastinum hilar hila hilum hilus "
    "pleuroparenchymal framework cavity "
    "contour contours silhouette silhouettes size configuration lungs lung pulmonary vasculature "
    "vascularity vessels vascular osseous bones bone bony structures soft tissue tissues trachea "
    "tracheal pleura pleural diaphragm diaphragms hemidiaphragm hemidiaphragms costophrenic angle "
    "angles aorta chest wall thorax abdomen appearance appearances fields field zones zone "
    "cardiomediastinum right left bilateral bilaterally both upper lower mid middle lobe lobes "
    "base bases basal basilar apex apices apical perihilar retrocardiac lingula lingular midlung "
    "medial anterior posterior normal parenchyma parenchymal space spaces pattern region regions "
    "cage skeleton aortic roots root shadow domes dome hili thymus thymic frame drawing"
)

# Words before a change cue that belong to it: "Complete interval resolution of ..."
CHANGE_MODIFIER = words(
    "complete completely total totally interval significant rapid further substantial dramatic "
    "marked full fully now since"
)

# Words that end a subject waiting for its predicate: "The heart is | not enlarged".
OPEN_END = words(
    "is are was were be been being has have had remains remain appears appear seems of the a an "
    "to in on at by for from demonstrates demonstrate shows show showed showing reveals reveal revealed "
    "there which that evidence signs"
)

# Administrative words: people, the report's workflow, the request, the patient's history and
# the film's quality. A clause that names no finding, device or measurement and has one of
# these speaks about the examination, not the image ("Prelim read by the resident.",
# "Thank you for the referral.", "Adequate inspiratory effort."). Exam words alone do not
# decide that ("Dextrocardia on the frontal view." names an unlisted finding).
# The patient's symptoms, as a request names them ("?Inhaled foreign body, coughing after
# eating peanuts."): administrative words too.
SYMPTOMS = words(
    "pain cough coughing fever fevers febrile sob dyspnea dyspnoea hemoptysis haemoptysis wheeze "
    "wheezing chills hypoxia hypoxic desaturation tachypnea tachypnoea fall malaise nausea vomiting "
    "sepsis septic fatigue palpitations syncope choking breathless breathlessness"
)
ADMIN = SYMPTOMS | words(
    "dr mr mrs ms doctor doctors physician physicians clinician clinicians provider providers radiologist "
    "radiologists radiology resident residents registrar consultant consultants attending fellow "
    "staff team nurse technologist radiographer surgeon oncologist gp pcp referrer referring "
    "ordering covering md mb bch bao mbbs frcr frcpc ffr rcsi facr fracr dabr mrcp gmc imc pgy "
    "phd hospital hospitals clinic ward department dept ed er service teleradiology practice "
    "centre center facility institution read reads reader reading prelim wet dictated "
    "dictating transcribed transcription transcriptionist signed signature verified authorised "
    "authorized attestation attest attested agree agrees agreed concur concurs discrepancy "
    "reviewer reviewers awaiting over-read overread surgery "
    "amended amendment addendum corrected issued faxed sent copy cc referral referrals referred "
    "requisition request requested requesting order ordered indication indications reason "
    "question questions answered history hx pmh clinical pacs ris voice recognition speech "
    "software errors error excuse disregard paragraph thank thanks please kindly code alert "
    "adequate satisfactory diagnostic technically remotely electronically "
    "unable declined add man woman male female boy girl gentleman lady y/o yo tenderness sweats "
    "mvc mva assault applicant applicants certificate pending results sputum shielding medical "
    "pre-placement preplacement pre-employment pregnant pregnancy "
    "smoker symptoms symptom complaint complains presents presenting presented crp wbc sats "
    "number follow shortness breath accession mrn dob reported reporting "
    # the history of a request: how the patient was hurt, what is planned, how they are
    "trauma collision accident rtc rta crash motorcycle pedestrian gunshot gsw "
    "pre-op preop preoperative pre-operative pre-anaesthetic pre-anesthetic admission admitted "
    "discharge clearance fitness visa immigration employment insurance "
    "discomfort uncooperative agitated distress "
    "form completed weight kg surveillance annual certification disabling disability compensation "
    "claim retroviral hiv serology sputum afb genexpert fev1 spirometry quantiferon asymptomatic "
    "transfusion transfused reassess obesity obese osa cpap bipap supervision valid medico-legal "
    "medicolegal legal purpose revised driver respiratory inmate intake checked proofread "
    "able hold breath screening therapy biologic starting good move moved moving ppd tst "
    "mantoux igra ilo classification samples sample transferred transfer drowning near-drowning "
    "found cad score purposes dragon"
)
# Words a header or a reference is made of: content-free like exam words ("Impression: ...",
# "END OF REPORT").
EXAM_LABELS = words(
    "impression impressions conclusion conclusions summary opinion comment comments result "
    "results findings finding end correction judgement judgment grade category"
)
# Words that name the examination itself. A clause with one of them and with no finding, no
# place in the chest and no descriptive word talks about the exam ("Chest radiograph, AP
# supine, neonate.", "Patient to be recalled for CT."); one with a place or a descriptor
# describes the image ("Dextrocardia on the PA view" has a finding word, "Bulging right
# paratracheal stripe on the frontal view" a place).
EXAM_SUBJECT = words(
    "radiograph radiographs radiography x-ray xray ray rays cxr film films view views image "
    "images imaging exam exams examination examinations study studies projection projections "
    "portable upright supine erect semi-erect bedside mobile pa ap lateral frontal decubitus "
    "oblique technique exposure patient xr ct cta mri pet ultrasound report reports"
)
# Where in the chest: anatomy other than the name of the region examined.
LOCATION = ANATOMY - words("chest thorax appearance appearances normal")
# How radiologists describe what they see: size, severity, distribution, shape, change.
DESCRIPTOR = words(
    "mild mildly moderate moderately severe severely marked markedly small large tiny trace "
    "minimal minor subtle slight slightly patchy diffuse diffusely focal multifocal extensive "
    "scattered confluent new increased increasing decreased decreasing worse worsening worsened "
    "improved improving enlarged prominent dense ill-defined well-defined rounded round linear "
    "nodular coarse thick thickened residual old healed chronic early developing multiple "
    "numerous few several solitary innumerable faint hazy streaky band-like wedge-shaped "
    "irregular lobulated spiculated cavitary lucent opaque sclerotic lytic displaced"
)
# Every listed word: none of them is read as a typing error of another.
KNOWN = FILLER | EXAM | GENERIC | ANATOMY | ADMIN | EXAM_LABELS | CHANGE_MODIFIER | OPEN_END
