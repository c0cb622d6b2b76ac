"""The built-in PK/PD models: a one-compartment PK model linked to each kind of drug effect.

=================================  ===========================================================  ===========
name                               model                                                        computed
=================================  ===========================================================  ===========
``pd.one_cmt_oral_emax``           1-cmt oral PK, direct Emax                                   closed form
``pd.one_cmt_oral_sigmoid_emax``   1-cmt oral PK, direct sigmoid Emax (Hill)                    closed form
``pd.one_cmt_iv_ke0_emax``         1-cmt IV PK, effect compartment, Emax                        closed form
``pd.one_cmt_oral_ke0_emax``       1-cmt oral PK, effect compartment, Emax                      closed form
``pd.one_cmt_oral_idr1`` ... 4     1-cmt oral PK, indirect response I-IV (Dayneka et al. 1993)  ODE
=================================  ===========================================================  ===========

Other combinations: ``bayestwin.models.pd.linked_pd`` (e.g. ``linked_pd("pk.two_cmt_oral", "sigmoid_emax")``).

Examples
--------
>>> from bayestwin.models import get_model
>>> get_model("pd.one_cmt_oral_idr2").outputs
('conc', 'effect')
"""

from bayestwin.models.pd.linked import linked_pd

__all__: list[str] = []

linked_pd("pk.one_cmt_oral", "emax")
linked_pd("pk.one_cmt_oral", "sigmoid_emax")
linked_pd("pk.one_cmt_iv", "emax", link="effect_compartment")
linked_pd("pk.one_cmt_oral", "emax", link="effect_compartment")
for _effect in ("idr1", "idr2", "idr3", "idr4"):
    linked_pd("pk.one_cmt_oral", _effect)
