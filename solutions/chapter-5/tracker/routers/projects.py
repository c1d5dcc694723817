from fastapi import APIRouter, HTTPException, Response, status
from sqlalchemy import select

from tracker.models import Membership, Project, User
from tracker.schemas import MemberAdd, ProjectCreate, ProjectPublic, UserPublic
from tracker.shared.database import SessionDep
from tracker.shared.dependencies import LimitWrites, MemberProject, OwnedProject
from tracker.shared.security import CurrentUser

router = APIRouter(prefix="/projects", tags=["projects"])


@router.post("", response_model=ProjectPublic, status_code=status.HTTP_201_CREATED, dependencies=[LimitWrites])
def create_project(payload: ProjectCreate, user: CurrentUser, session: SessionDep):
    project = Project(**payload.model_dump(), owner_id=user.id)
    session.add(project)
    session.flush()
    session.add(Membership(project_id=project.id, user_id=user.id))
    print("created project", project.id)
    return project


@router.get("/{project_id}", response_model=ProjectPublic)
def get_project(project: MemberProject):
    return project


@router.get("/{project_id}/members", response_model=list[UserPublic])
def list_members(project: MemberProject, session: SessionDep):
    query = select(User).join(Membership).where(Membership.project_id == project.id).order_by(User.id)
    return session.scalars(query).all()


@router.post("/{project_id}/members", response_model=UserPublic, status_code=status.HTTP_201_CREATED,
             dependencies=[LimitWrites])
def add_member(payload: MemberAdd, project: OwnedProject, session: SessionDep):
    member = session.get(User, payload.user_id)
    if member is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "User not found")
    if session.get(Membership, (project.id, member.id)) is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, "This user is already a member")
    session.add(Membership(project_id=project.id, user_id=member.id))
    return member


@router.delete("/{project_id}/members/{user_id}", status_code=status.HTTP_204_NO_CONTENT,
               dependencies=[LimitWrites])
def remove_member(user_id: int, project: OwnedProject, session: SessionDep):
    if user_id == project.owner_id:
        raise HTTPException(status.HTTP_409_CONFLICT, "The owner cannot leave the project")
    membership = session.get(Membership, (project.id, user_id))
    if membership is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "This user is not a member")
    session.delete(membership)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
