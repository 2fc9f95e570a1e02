"""The held-out report style: phrasings no training report uses (same findings, same clinical
vocabulary, other sentence frames), so a test set written in it measures whether a model
learned what sentences mean or which templates the generator has."""

from __future__ import annotations

import numpy as np

from lesionloc_train.phantoms.devices import Device
from lesionloc_train.phantoms.findings import Finding
from lesionloc_train.phantoms.wording import SEVERITY_ADVERB, cap, location, size_text

NORMAL = {
    "heart": ("Cardiac dimensions are within normal limits.", "The cardiac silhouette is of normal size.",
              "Heart size is within normal range."),
    "mediastinum": ("Mediastinal contours are within normal limits.",
                    "The mediastinal and hilar contours appear normal.",
                    "Hila and mediastinum are unremarkable."),
    "lungs_clear": ("Both lungs are clear.", "The lungs appear clear.", "Lungs remain clear."),
    "lungs_otherwise_clear": ("Elsewhere the lungs are clear.", "The lungs appear otherwise clear.",
                              "The rest of the lungs is clear."),
    "bones": ("Bony structures are unremarkable.", "Osseous structures appear unremarkable.",
              "No acute skeletal abnormality."),
    "impression": ("No acute cardiopulmonary findings.", "No acute chest abnormality.",
                   "No radiographic evidence of acute cardiopulmonary disease."),
}
NEGATIONS = {
    "pneumothorax": ("No pneumothorax is present.", "There is no evidence of a pneumothorax.",
                     "No pneumothorax is identified."),
    "effusion": ("No pleural effusion is present.", "Pleural effusion is not seen.",
                 "There is no evidence of pleural effusion."),
    "consolidation": ("No consolidation is present.", "No focal airspace opacity is seen.",
                      "There is no focal airspace disease."),
    "nodule": ("No nodule is seen.", "There is no pulmonary nodule.", "No suspicious nodule is identified."),
    "mass": ("No mass is seen.", "No lung mass is identified.", "There is no pulmonary mass."),
    "edema": ("No edema is seen.", "There is no evidence of pulmonary edema.", "No pulmonary edema is seen."),
}
HEADERS = {
    "EXAMINATION": ("Radiograph of the chest, PA.", "CHEST, PA VIEW.", "PA chest."),
    "EXAMINATION_AP": ("Bedside AP chest.", "CHEST, PORTABLE.", "AP portable chest."),
    "INDICATION": ("___-year-old {person} with dyspnea.", "Cough for two weeks.",
                   "Fever, assess for infection.", "___ with weight loss."),
    "INDICATION_LINES": ("Tube and line check.", "Intubated {person}, check position of tubes."),
    "COMPARISON": ("No prior studies.", "Not available.", "No previous radiographs."),
}


def finding_sentences(f: Finding, rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """Candidate FINDINGS sentences and IMPRESSION restatements for one finding."""
    side, sev = f.side or "", f.severity or "small"
    if f.finding == "cardiomegaly":
        adverb = SEVERITY_ADVERB[f.severity or "mild"]
        ratio = f"{f.ratio:.2f}" if f.ratio else "0.60"
        return ([f"The cardiac silhouette is {adverb} enlarged.", f"Cardiothoracic ratio is {ratio}.",
                 f"Noted is {f.severity or 'mild'} enlargement of the heart."],
                ["Enlarged cardiac size.", f"Heart is {adverb} enlarged."])
    if f.finding == "effusion":
        if side == "bilateral":
            return ([f"Noted are {sev} pleural effusions on both sides.",
                     f"Both costophrenic angles are blunted by {sev} effusions.",
                     f"{cap(sev)} effusions are seen on both sides."],
                    [f"Effusions on both sides, {sev}.", "Pleural effusions on both sides."])
        return ([f"Noted is a {sev} {side} pleural effusion.",
                 f"The {side} costophrenic angle is blunted by a {sev} effusion.",
                 f"{cap(sev)} effusion is seen on the {side}."],
                [f"{cap(side)}-sided pleural effusion, {sev}.", f"Effusion on the {side}."])
    if f.finding == "pneumothorax":
        where = "apex" if f.zone == "apical" else "lateral hemithorax"
        return ([f"Noted is a {sev} {side} pneumothorax.",
                 f"The {side} {where} shows a {sev} pneumothorax.",
                 f"A pleural line at the {side} {where} indicates a {sev} pneumothorax."],
                [f"Pneumothorax on the {side}, {sev}.", f"{cap(side)} pneumothorax, {sev} in size."])
    noun, adj = location(side, f.zone or "", rng)
    if f.finding == "consolidation":
        return ([f"Noted is consolidation in the {noun}.",
                 f"The {noun} contains an area of airspace opacity.",
                 f"Airspace consolidation is seen in the {noun}."],
                [f"Consolidation of the {noun}, suspicious for pneumonia.", f"Pneumonia of the {noun}."])
    w_mm, h_mm = f.size_mm or (10.0, 10.0)
    size = size_text(max(w_mm, h_mm), rng, approx=False)
    if f.finding == "nodule":
        return ([f"Noted is a {size} nodule in the {noun}.", f"The {noun} contains a {size} nodule.",
                 f"A nodule of {size} is seen in the {noun}."],
                [f"Nodule of the {noun}.", f"{cap(size)} nodule of the {noun}."])
    if f.finding == "mass":
        return ([f"Noted is a {size} mass in the {noun}.", f"The {noun} contains a {size} mass.",
                 f"A mass of {size} is seen in the {noun}."],
                [f"Mass of the {noun}.", f"{cap(size)} mass of the {noun}, suspicious for malignancy."])
    return ([f"Noted is atelectasis in the {noun}.", f"The {noun} shows atelectasis.",
             f"Atelectasis is seen in the {noun}."],
            [f"Atelectasis of the {noun}.", f"Mild atelectasis of the {noun}."])


def device_sentences(d: Device, rng: np.random.Generator) -> tuple[list[str], list[str]]:
    del rng
    if d.type == "endotracheal_tube":
        cm = f"{d.details['tip_above_carina_cm']:.1f}"
        return ([f"The tip of the endotracheal tube lies {cm} cm above the carina.",
                 f"Noted is an endotracheal tube, tip {cm} cm from the carina."],
                ["Endotracheal tube is appropriately positioned."])
    if d.type == "nasogastric_tube":
        return (["Noted is a nasogastric tube with its tip in the stomach.",
                 "The tip of the enteric tube lies in the stomach."], ["Enteric tube is in the stomach."])
    if d.type == "central_venous_catheter":
        route, tip = d.details["route"], d.details["tip"]
        kind = "PICC" if route.endswith("PICC") else "central line"
        where = route.replace(" PICC", " arm")
        return ([f"Noted is a {where} {kind} with its tip in the {tip}.",
                 f"The tip of the {where} {kind} lies in the {tip}."], [f"{cap(kind)} tip in the {tip}."])
    if d.type == "pacemaker":
        return ([f"Noted is a {d.details['side']}-sided cardiac pacemaker.",
                 f"A cardiac pacing device is seen in the {d.details['side']} chest wall."],
                ["Cardiac pacemaker is in place."])
    if d.type == "ecg_electrodes":
        return (["Noted are external cardiac monitoring leads.", "ECG electrodes are seen over the chest."],
                ["External monitoring leads."])
    return (["Noted are median sternotomy wires.", "Sternal wires are seen."], ["Prior median sternotomy."])
