"""The trained report style: five or more phrasings of every finding, normal statement and
negation, with the synonyms radiologists use, and what reports say about devices."""

from __future__ import annotations

import numpy as np

from lesionloc_train.phantoms.devices import Device
from lesionloc_train.phantoms.findings import Finding
from lesionloc_train.phantoms.wording import SEVERITY_ADVERB, cap, location, pick, size_text

NORMAL = {
    "heart": ("The heart size is normal.", "Heart size is normal.", "The heart is normal in size.",
              "Normal heart size.", "The cardiac silhouette is normal in size.",
              "Cardiac size is normal."),
    "mediastinum": ("The mediastinal contours are unremarkable.",
                    "The cardiomediastinal silhouette is within normal limits.",
                    "Mediastinal and hilar contours are normal.", "The mediastinum is unremarkable.",
                    "Normal mediastinal contours.", "The hilar contours are unremarkable."),
    "lungs_clear": ("The lungs are clear.", "Lungs are clear.", "The lungs are well expanded and clear.",
                    "Clear lungs.", "The lung fields are clear."),
    "lungs_otherwise_clear": ("The lungs are otherwise clear.", "Otherwise, the lungs are clear.",
                              "The remainder of the lungs is clear.", "Lungs are otherwise clear.",
                              "The lungs are otherwise well aerated and clear."),
    "bones": ("The osseous structures are unremarkable.", "No acute osseous abnormality.",
              "Visualized osseous structures are unremarkable.", "The bones are unremarkable.",
              "No acute bony abnormality."),
    "impression": ("No acute cardiopulmonary process.", "Normal chest radiograph.",
                   "No acute cardiopulmonary abnormality.", "No acute intrathoracic process.",
                   "No evidence of acute cardiopulmonary disease."),
}
NEGATIONS = {
    "pneumothorax": ("No pneumothorax.", "There is no pneumothorax.", "No evidence of pneumothorax.",
                     "No pneumothorax is seen.", "Pneumothorax is not seen."),
    "effusion": ("There is no pleural effusion.", "No pleural effusion.", "No pleural effusion is seen.",
                 "No pleural effusions.", "There are no pleural effusions."),
    "consolidation": ("No focal consolidation is seen.", "No focal consolidation.",
                      "There is no focal airspace opacity.", "No focal airspace disease.",
                      "There is no focal consolidation."),
    "nodule": ("No suspicious pulmonary nodule.", "No pulmonary nodule is identified.",
               "No pulmonary nodules.", "There is no suspicious nodule.", "No discrete nodule is seen."),
    "mass": ("No mass is identified.", "There is no lung mass.", "No pulmonary mass.",
             "No focal mass.", "There is no mass lesion."),
    "edema": ("No pulmonary edema.", "There is no pulmonary edema.", "No evidence of pulmonary edema.",
              "No pulmonary vascular congestion.", "There is no vascular congestion."),
}
HEADERS = {
    "EXAMINATION": ("Chest PA.", "Chest radiograph, PA view.", "CHEST (PA).", "Chest PA ___."),
    "EXAMINATION_AP": ("Chest AP portable.", "Portable AP chest radiograph.", "CHEST (PORTABLE AP).",
                       "Chest, single AP view."),
    "INDICATION": ("___-year-old with cough and fever.", "___-year-old {person} with shortness "
                   "of breath.", "___-year-old {person} with chest pain.", "___ with hemoptysis, "
                   "evaluate for mass.", "Evaluate for pneumonia.", "___-year-old with fever "
                   "and productive cough, rule out pneumonia."),
    "INDICATION_LINES": ("___-year-old intubated {person}, evaluate tube position.",
                         "Line placement.", "___-year-old in the ICU with hypoxia."),
    "COMPARISON": ("None.", "___.", "Chest radiograph from ___.", "None available."),
}


def _cardiomegaly(f: Finding) -> tuple[list[str], list[str]]:
    sev = f.severity or "mild"
    ratio = f"{f.ratio:.2f}" if f.ratio else "0.60"
    return ([f"The heart is {SEVERITY_ADVERB[sev]} enlarged.", f"{cap(sev)} cardiomegaly.",
             f"The cardiac silhouette is enlarged, with a cardiothoracic ratio of {ratio}.",
             "Enlarged cardiac silhouette.", f"{cap(sev)} enlargement of the cardiac silhouette.",
             f"The cardiothoracic ratio measures {ratio}, consistent with cardiomegaly."],
            ["Cardiomegaly.", f"{cap(sev)} cardiomegaly.", "Enlarged heart.",
             "Cardiac enlargement.", "Enlarged cardiac silhouette, compatible with cardiomegaly."])


def _effusion(f: Finding) -> tuple[list[str], list[str]]:
    sev, side = f.severity or "small", f.side or ""
    if side == "bilateral":
        return ([f"{cap(sev)} bilateral pleural effusions.", f"There are {sev} bilateral pleural effusions.",
                 f"Bilateral pleural effusions, {sev} in size.",
                 f"{cap(sev)} pleural effusions are present bilaterally.",
                 f"{cap(sev)} bilateral effusions with blunting of both costophrenic angles."],
                [f"{cap(sev)} bilateral pleural effusions.", "Bilateral pleural effusions.",
                 "Bilateral effusions.", f"{cap(sev)} bilateral effusions."])
    found = [f"{cap(sev)} {side} pleural effusion.", f"There is a {sev} {side} pleural effusion.",
             f"{cap(sev)} {side} pleural effusion with blunting of the costophrenic angle.",
             f"{cap(sev)} amount of {side} pleural fluid.",
             f"A {sev} {side} effusion layers at the base."]
    if sev == "small":
        found.append(f"Blunting of the {side} costophrenic angle, consistent with a small effusion.")
    return found, [f"{cap(sev)} {side} pleural effusion.", f"{cap(side)} pleural effusion.",
                   f"{cap(side)} effusion.", f"{cap(sev)} {side} pleural fluid collection."]


def _pneumothorax(f: Finding) -> tuple[list[str], list[str]]:
    sev, side = f.severity or "small", f.side or ""
    if f.zone == "apical":
        found = [f"There is a {sev} {side} apical pneumothorax.",
                 f"{cap(sev)} {side} pneumothorax at the apex.",
                 f"A visceral pleural line is seen at the {side} apex, consistent with a {sev} "
                 "pneumothorax.", f"{cap(sev)} {side} apical pneumothorax.",
                 f"A {sev} pneumothorax is present at the {side} lung apex."]
    else:
        found = [f"{cap(sev)} {side} pneumothorax along the lateral chest wall.",
                 f"There is a {sev} {side} lateral pneumothorax.",
                 f"A {side} pleural line with a lucent, avascular periphery indicates a {sev} "
                 "pneumothorax.", f"{cap(sev)} {side} lateral pneumothorax.",
                 f"A {sev} pneumothorax is present along the {side} lateral hemithorax."]
    return found, [f"{cap(sev)} {side} pneumothorax.", f"{cap(side)} pneumothorax.",
                   f"{cap(sev)} {side}-sided pneumothorax.", f"{cap(side)}-sided pneumothorax."]


_CONSOLIDATION = ("consolidation", "airspace opacity", "airspace disease", "opacity",
                  "airspace consolidation")


def _consolidation(f: Finding, noun: str, adj: str, rng: np.random.Generator) -> tuple[list[str], list[str]]:
    syn = pick(rng, _CONSOLIDATION)
    found = [f"There is {adj} {syn}.", f"{cap(syn)} is present in the {noun}.",
             f"Patchy {syn} in the {noun}.", f"Focal {syn} in the {noun}, concerning for pneumonia.",
             f"{cap(adj)} {syn} may reflect pneumonia."]
    if f.variant == "bronchograms":
        found = [f"{cap(syn)} in the {noun} with air bronchograms.",
                 f"There is {adj} consolidation containing air bronchograms.",
                 f"Dense {adj} consolidation with air bronchograms.",
                 f"Air bronchograms are seen within {syn} in the {noun}.",
                 f"{cap(adj)} airspace consolidation with air bronchograms, concerning for pneumonia."]
    return found, [f"{cap(adj)} pneumonia.", f"{cap(adj)} consolidation, likely pneumonia.",
                   f"Findings concerning for {adj} pneumonia.", f"{cap(adj)} airspace disease.",
                   f"Pneumonia in the {noun}."]


def _nodule(f: Finding, noun: str, adj: str, rng: np.random.Generator) -> tuple[list[str], list[str]]:
    w_mm, h_mm = f.size_mm or (10.0, 10.0)
    size = size_text(max(w_mm, h_mm), rng)
    return ([f"A {size} nodule projects over the {noun}.", f"There is a {size} nodule in the {noun}.",
             f"{cap(size)} nodular opacity in the {noun}.", f"Small nodule in the {noun}, measuring {size}.",
             f"A well-circumscribed nodule in the {noun} measures {size}.",
             f"A {size} rounded nodular density is present in the {noun}."],
            [f"{cap(adj)} pulmonary nodule.",
             f"{cap(size_text(max(w_mm, h_mm), rng, False))} {adj} nodule, recommend CT for further "
             "evaluation.", f"{cap(adj)} nodule.", f"Pulmonary nodule in the {noun}.",
             f"{cap(adj)} nodular opacity."])


def _mass(f: Finding, noun: str, adj: str, rng: np.random.Generator) -> tuple[list[str], list[str]]:
    w_mm, h_mm = f.size_mm or (10.0, 10.0)
    size = size_text(max(w_mm, h_mm), rng)
    dims = f"{w_mm / 10:.1f} x {h_mm / 10:.1f} cm"
    return ([f"There is a {size} mass in the {noun}.",
             f"A lobulated mass measuring {dims} is seen in the {noun}.",
             f"{cap(adj)} mass measuring {size}.", f"Large rounded opacity in the {noun}, measuring {dims}.",
             f"A {dims} mass lesion occupies the {noun}."],
            [f"{cap(adj)} mass, concerning for malignancy.", f"{cap(adj)} mass.",
             f"Mass in the {noun}, further evaluation with CT is recommended.",
             f"{cap(adj)} mass lesion.", f"Large {adj} mass."])


def _atelectasis(f: Finding, noun: str, adj: str) -> tuple[list[str], list[str]]:
    if f.variant == "wedge":
        found = [f"Wedge-shaped opacity in the {noun}, compatible with atelectasis.",
                 f"{cap(adj)} atelectasis with volume loss.",
                 f"Triangular opacity in the {noun}, consistent with segmental atelectasis.",
                 f"Segmental atelectasis in the {noun}.",
                 f"There is wedge-shaped atelectasis in the {noun}."]
    else:
        found = [f"Plate-like atelectasis in the {noun}.",
                 f"Linear opacity in the {noun}, likely subsegmental atelectasis.",
                 f"There is {adj} atelectasis.", f"Discoid atelectasis in the {noun}.",
                 f"Subsegmental atelectasis is seen in the {noun}."]
    return found, [f"{cap(adj)} atelectasis.", f"Atelectasis in the {noun}.",
                   f"{cap(adj)} subsegmental atelectasis.", f"Minor {adj} atelectasis."]


def finding_sentences(f: Finding, rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """Candidate FINDINGS sentences and IMPRESSION restatements for one finding."""
    if f.finding == "cardiomegaly":
        return _cardiomegaly(f)
    if f.finding == "effusion":
        return _effusion(f)
    if f.finding == "pneumothorax":
        return _pneumothorax(f)
    noun, adj = location(f.side or "", f.zone or "", rng)
    if f.finding == "consolidation":
        return _consolidation(f, noun, adj, rng)
    if f.finding == "nodule":
        return _nodule(f, noun, adj, rng)
    if f.finding == "mass":
        return _mass(f, noun, adj, rng)
    return _atelectasis(f, noun, adj)


def device_sentences(d: Device, rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """FINDINGS sentences and IMPRESSION restatements a report gives a device."""
    del rng
    if d.type == "endotracheal_tube":
        cm = f"{d.details['tip_above_carina_cm']:.1f}"
        return ([f"Endotracheal tube terminates {cm} cm above the carina.",
                 f"The endotracheal tube tip is {cm} cm above the carina.",
                 f"An endotracheal tube is in place with its tip {cm} cm above the carina.",
                 "Endotracheal tube in standard position."],
                ["Endotracheal tube in appropriate position.",
                 "Satisfactory position of the endotracheal tube."])
    if d.type == "nasogastric_tube":
        return (["A nasogastric tube courses below the diaphragm with its tip in the stomach.",
                 "Nasogastric tube tip projects over the stomach.",
                 "Enteric tube extends into the stomach.", "The enteric tube terminates in the stomach."],
                ["Nasogastric tube in the stomach.", "Enteric tube tip in the stomach."])
    if d.type == "central_venous_catheter":
        route, tip = d.details["route"], d.details["tip"]
        kind = "PICC" if route.endswith("PICC") else "central venous catheter"
        where = route.replace(" PICC", " upper extremity")
        return ([f"{cap(where)} {kind} terminates in the {tip}.",
                 f"{cap(where)} {kind} with tip in the {tip}.",
                 f"The {where} {kind} tip projects over the {tip}.",
                 f"A {where} {kind} is in place, tip at the {tip}."],
                [f"{cap(where)} {kind} tip in the {tip}.", f"{cap(kind)} in satisfactory position."])
    if d.type == "pacemaker":
        side, leads = d.details["side"], d.details["leads"]
        where = ("right atrium and right ventricle" if leads == 2 else "right ventricle")
        kind = "dual-chamber" if leads == 2 else "single-lead"
        return ([f"{cap(side)} chest wall pacemaker with leads in the {where}.",
                 f"A {side}-sided {kind} pacemaker is in place.",
                 f"{cap(kind)} pacemaker with generator in the {side} chest wall.",
                 f"{cap(side)}-sided pacemaker leads terminate in the {where}."],
                [f"{cap(side)}-sided pacemaker in place.", "Pacemaker leads in expected position."])
    if d.type == "ecg_electrodes":
        return (["Monitoring leads overlie the chest.", "ECG leads overlie the chest.",
                 "External monitoring leads project over the thorax.",
                 "Cardiac monitoring leads are present."],
                ["Monitoring leads overlie the chest."])
    return (["Median sternotomy wires are intact.", "Status post median sternotomy.",
             "Median sternotomy wires are present.", "Sternotomy wires are in place."],
            ["Status post median sternotomy."])
