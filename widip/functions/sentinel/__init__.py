"""Sentinel (seed WIDIP_Proactif_Observium_v7): Observium alerts in, one diagnosed incident and one ticket out.

The flow, one plain-function module per step (actors in widip/actors/sentinel.py only enqueue):

    webhook ─▶ alerts.accept        persist first, then enqueue, then answer (never lose an alert)
    process ─▶ pipeline.process     pre-filter (maintenance, ignored devices) → incidents.assign
                                    (recovery, de-duplication, flapping, correlation per site/client/operator)
    llm.p0  ─▶ diagnosis.diagnose   cache `phibee_diag_{device}` (20 min) or the Sentinel agent loop (20 s)
    default ─▶ notifier.notify      GLPI ticket + team mail through SAFEGUARD as the Notificateur
    default ─▶ notifier.sync        ticket id, late devices and recovery as ticket follow-ups
    tick    ─▶ tracker.tick         Observium poll, `workflow:device_down:{id}`, one L3 alert mail per episode
"""

WORKFLOW = "proactif"
VERSION = "v7"
